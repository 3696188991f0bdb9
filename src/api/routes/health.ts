import { Elysia, t } from "elysia";
import type { Redis } from "ioredis";
import type { Sql } from "postgres";
import { readMaxmemoryPolicy } from "../../redis";

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms))]);

async function check(fn: () => Promise<unknown>): Promise<string> {
  try {
    await withTimeout(fn(), 2_000);
    return "ok";
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `down: ${e.message || e.code || String(err)}`;
  }
}

export const healthRoutes = (deps: { sql: Sql; redis: Redis }) =>
  new Elysia({ name: "health", detail: { tags: ["health"] } })
    .get("/healthz", () => ({ status: "ok" as const }), {
      response: t.Object({ status: t.Literal("ok") }),
      detail: { summary: "Liveness: the process answers" },
    })
    .get(
      "/readyz",
      async ({ set }) => {
        const [postgres, redis] = await Promise.all([check(() => deps.sql`select 1`), check(() => deps.redis.ping())]);
        const maxmemoryPolicy = redis === "ok" ? await readMaxmemoryPolicy(deps.redis) : null;
        const details = { postgres, redis, redisMaxmemoryPolicy: maxmemoryPolicy };
        if (postgres === "ok" && redis === "ok") return { status: "ready" as const, ...details };
        set.status = 503;
        const down = [postgres !== "ok" && "Postgres", redis !== "ok" && "Redis"].filter(Boolean).join(" and ");
        return { error: { code: "not_ready", message: `${down} unreachable; flowd cannot serve requests until it answers.`, details } };
      },
      { detail: { summary: "Readiness: Postgres and Redis reachable (503 with the reason otherwise)" } },
    );
