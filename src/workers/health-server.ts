import type { RedisClient as Redis } from "../redis";
import type { Sql } from "postgres";
import { exposition, METRICS_CONTENT_TYPE, type Metric, type Metrics } from "../metrics";
import { readiness } from "../readiness";

/**
 * Optional liveness/readiness port for worker-only processes, which have no HTTP server otherwise;
 * /metrics serves the process's registry (runtime, job histograms and counters) and `metrics()`.
 */
export function startHealthServer(deps: { port: number; host: string; sql: Sql; redis: Redis | null; registry: Metrics; metrics: () => Metric[] }) {
  const server = Bun.serve({
    port: deps.port,
    hostname: deps.host,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/healthz") return Response.json({ status: "ok" });
      if (path === "/metrics") return new Response(await exposition(deps.registry, deps.metrics()), { headers: { "content-type": METRICS_CONTENT_TYPE } });
      if (path !== "/readyz") return Response.json({ error: { code: "route_not_found", message: `No route ${path}` } }, { status: 404 });
      const { status, body } = await readiness(deps);
      return Response.json(body, { status });
    },
  });
  return { port: server.port, stop: () => server.stop(true) };
}
