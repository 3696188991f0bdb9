import { Elysia } from "elysia";
import type { Span } from "@opentelemetry/api";
import { logContext, type Logger } from "../../log";
import type { Metrics } from "../../metrics";
import { endServerSpan, enterServerSpan } from "../../telemetry";
import { requestPath } from "../request-path";

/** A client's id is kept when it is short and plain: it lands in every log line and a response header. */
const REQUEST_ID = /^[A-Za-z0-9._:@\/+=-]{1,128}$/;

export function acceptedRequestId(header: string | null): string | null {
  return header !== null && REQUEST_ID.test(header) ? header : null;
}

/** Probes that answer every few seconds: their successes are logged at debug, not info. */
const PROBES = new Set(["/healthz", "/readyz", "/metrics"]);

/** Label for requests that matched no route, so a scan of random paths adds no new series. */
const UNMATCHED = "unmatched";

interface InFlight {
  startedAt: number;
  requestId: string;
  path: string;
  span?: Span;
}

/**
 * One JSON line per request (method, route pattern, status, duration, request id, user id), the
 * request duration histogram, and the request's server span. `x-request-id` is taken from the
 * client when it is plain (else one is made) and sent back; every line the request causes carries it.
 */
export const requestLogPlugin = (deps: { log: Logger; metrics: Metrics }) => {
  const inFlight = new WeakMap<Request, InFlight>();
  return new Elysia({ name: "request-log" })
    .onRequest(({ request, set }) => {
      const requestId = acceptedRequestId(request.headers.get("x-request-id")) ?? crypto.randomUUID();
      set.headers["x-request-id"] = requestId;
      // For the rest of this request's async work: its log lines carry the id without being handed it.
      logContext.enterWith({ requestId });
      const path = requestPath(request.url);
      inFlight.set(request, { startedAt: performance.now(), requestId, path, span: enterServerSpan(request, path) });
    })
    .onAfterResponse({ as: "global" }, (ctx) => {
      const entry = inFlight.get(ctx.request);
      if (!entry) return;
      inFlight.delete(ctx.request);
      const seconds = (performance.now() - entry.startedAt) / 1000;
      const route = (ctx as { route?: string }).route || UNMATCHED;
      const status = statusOf(ctx.set.status, ctx.response);
      const method = ctx.request.method;
      const userId = (ctx as { user?: { userId?: string } }).user?.userId;
      deps.metrics.httpRequestDuration.observe({ method, route, status: String(status) }, seconds);
      if (entry.span) endServerSpan(entry.span, method, route, status);
      const quiet = status < 400 && PROBES.has(route);
      deps.log[quiet ? "debug" : "info"]("request", {
        method,
        route,
        path: route === UNMATCHED ? entry.path : undefined,
        status,
        durationMs: Math.round(seconds * 1e6) / 1000,
        requestId: entry.requestId,
        userId,
      });
    });
};

const STATUS_NAMES: Record<string, number> = { OK: 200, Created: 201, "No Content": 204 };

function statusOf(status: unknown, response: unknown): number {
  if (response instanceof Response) return response.status;
  if (typeof status === "number") return status;
  if (typeof status === "string") return STATUS_NAMES[status] ?? 200;
  return 200;
}
