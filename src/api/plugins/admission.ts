import { Elysia } from "elysia";
import { Overloaded, type Admission, type Ticket } from "../admission";
import { requestPath } from "../request-path";

/** The routes that create: the only ones whose cost grows with what a client sends. */
export const CREATE_ROUTES: readonly string[] = ["/v1/flows", "/v1/jobs", "/v1/jobs/bulk", "/v1/schedules", "/v1/publish"];

/**
 * A definition's runs are creates too, under a path with its name in it. They and publishes count
 * as one job each here (their flows' size is the stored definition's, not the body's): they are
 * bounded by requests and bytes in flight.
 */
const RUNS_ROUTE = /^\/v1\/definitions\/[^/]+\/runs$/;

/** Jobs added to a running flow (src/services/spawn.ts) are creates as well, counted by the jobs they list. */
const SPAWN_ROUTE = /^\/(v1\/jobs|callbacks)\/[^/]+\/spawn$/;
const isCreate = (paths: ReadonlySet<string>, route: string) => paths.has(route) || RUNS_ROUTE.test(route) || SPAWN_ROUTE.test(route);

/** The route a create is for: `/v1/jobs/` counts as `/v1/jobs`. */
const routeOf = (url: string) => {
  const path = requestPath(url);
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
};

/**
 * Jobs a parsed create body holds: a flow's nodes, a bulk create's items, else one. The body is not
 * validated yet, so anything that is not the expected shape counts as one job (it is refused next).
 */
export function jobsInBody(route: string, body: unknown): number {
  if (route === "/v1/jobs/bulk") {
    const jobs = (body as { jobs?: unknown } | null)?.jobs;
    return Array.isArray(jobs) ? jobs.length : 1;
  }
  if (route !== "/v1/flows" && !SPAWN_ROUTE.test(route)) return 1;
  // The graph form lists its jobs flat.
  const listed = (body as { jobs?: unknown } | null)?.jobs;
  if (Array.isArray(listed)) return Math.max(1, listed.length);
  let jobs = 0;
  const todo: unknown[] = [(body as { root?: unknown } | null)?.root];
  while (todo.length > 0) {
    const node = todo.pop();
    if (typeof node !== "object" || node === null) continue;
    jobs++;
    const children = (node as { children?: unknown }).children;
    if (Array.isArray(children)) for (const child of children) todo.push(child);
  }
  return Math.max(1, jobs);
}

/**
 * Admission control for creates. `onRequest` runs before routing and before any body is read, so a
 * create that waits for room holds its connection and nothing else, and a refusal (503 `overloaded`,
 * Retry-After) costs neither the read nor the parse, and writes nothing. It waits here and not in a
 * parse hook: by then Elysia has touched `request.body`, and Bun starts filling the stream (20
 * clients sending 20 MB each and waiting there grew the process by 33 MB; waiting here, by 2 MB).
 * The price is that one async `onRequest` makes Elysia await it on every route (a microtask). Until the body is parsed its jobs are an estimate from the declared length (and a
 * body of unknown length counts as the body limit); once parsed they are counted, and what the
 * estimate held beyond that goes to the next waiter.
 * The place is given back after the response — which Elysia also runs after an error (401, 400, 413,
 * a failed write) — so whatever ends a create frees it; a client that goes away mid-create keeps it
 * until the handler is done, which is right: the work is still being held until then.
 */
export function createAdmissionGate(admission: Admission, routes: readonly string[] = CREATE_ROUTES) {
  const paths = new Set(routes);
  const held = new WeakMap<Request, { ticket: Ticket; route: string }>();
  const plugin = new Elysia({ name: "admission" })
    .onRequest(async ({ request }) => {
      if (request.method !== "POST") return;
      const route = routeOf(request.url);
      if (!isCreate(paths, route)) return;
      const length = request.headers.get("content-length");
      const entered = await admission.admit(length === null ? undefined : Number(length), () => request.signal);
      if (entered instanceof Overloaded) throw entered;
      held.set(request, { ticket: entered, route });
    })
    .onAfterResponse({ as: "global" }, ({ request }) => {
      held.get(request)?.ticket.release();
      held.delete(request);
    });
  return {
    plugin,
    /**
     * Told by the body plugin what a request's body parsed to. A hook here that read `body` would make
     * Elysia parse the body of every POST, creates or not.
     */
    parsed(request: Request, body: unknown, bytes: number) {
      const entry = held.get(request);
      entry?.ticket.settle({ jobs: jobsInBody(entry.route, body), bytes });
    },
  };
}
