import { Elysia } from "elysia";
import { Overloaded, type Admission, type Release } from "../admission";
import { requestPath } from "../request-path";

/** The routes that create: the only ones whose cost grows with what a client sends. */
export const CREATE_ROUTES: readonly string[] = ["/v1/flows", "/v1/jobs", "/v1/jobs/bulk", "/v1/schedules"];

/** The route a create is for: `/v1/jobs/` counts as `/v1/jobs`. */
const routeOf = (url: string) => {
  const path = requestPath(url);
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
};

/**
 * Admission control for creates. `onRequest` runs before routing and before any body is read, so a
 * refusal (503 `overloaded`, Retry-After) costs neither the read nor the parse, and writes nothing.
 * The slot is given back after the response — which Elysia also runs after an error (401, 400, 413,
 * a failed write) — so whatever ends a create frees its slot; a client that goes away mid-create
 * keeps it until the handler is done, which is right: the work is still being held until then.
 */
export const admissionPlugin = (admission: Admission, routes: readonly string[] = CREATE_ROUTES) => {
  const paths = new Set(routes);
  const held = new WeakMap<Request, Release>();
  return new Elysia({ name: "admission" })
    .onRequest(({ request }) => {
      if (request.method !== "POST" || !paths.has(routeOf(request.url))) return;
      const length = request.headers.get("content-length");
      const entered = admission.enter(length === null ? undefined : Number(length));
      if (entered instanceof Overloaded) throw entered;
      held.set(request, entered);
    })
    .onAfterResponse({ as: "global" }, ({ request }) => {
      held.get(request)?.();
      held.delete(request);
    });
};
