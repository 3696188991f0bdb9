import type { Redis } from "ioredis";
import type { Sql } from "postgres";
import { renderMetrics, type Metric } from "../metrics";

/** Optional liveness/readiness port for worker-only processes, which have no HTTP server otherwise. */
export function startHealthServer(deps: { port: number; host: string; sql: Sql; redis: Redis; metrics: () => Metric[] }) {
  const server = Bun.serve({
    port: deps.port,
    hostname: deps.host,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/healthz") return Response.json({ status: "ok" });
      if (path === "/metrics") return new Response(renderMetrics(deps.metrics()), { headers: { "content-type": "text/plain; version=0.0.4" } });
      if (path !== "/readyz") return Response.json({ error: { code: "route_not_found", message: `No route ${path}` } }, { status: 404 });
      const [postgres, redis] = await Promise.all([
        deps.sql`select 1`.then(() => "ok", (e: Error) => `down: ${e.message}`),
        deps.redis.ping().then(() => "ok", (e: Error) => `down: ${e.message}`),
      ]);
      const ready = postgres === "ok" && redis === "ok";
      return Response.json(ready ? { status: "ready", postgres, redis } : { error: { code: "not_ready", message: "Postgres or Redis unreachable", details: { postgres, redis } } }, { status: ready ? 200 : 503 });
    },
  });
  return { port: server.port, stop: () => server.stop(true) };
}
