import type { Redis } from "ioredis";
import type { Sql } from "postgres";
import { readMaxmemoryPolicy } from "./redis";
import { withTimeout } from "./timeout";

async function probe(what: string, fn: () => Promise<unknown>): Promise<string> {
  try {
    await withTimeout(fn(), 2_000, what);
    return "ok";
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `down: ${e.message || e.code || String(err)}`;
  }
}

/**
 * The one readiness rule, for the API's /readyz and a worker's health port: Postgres and Redis
 * answer within 2 s. The reply is SPEC's success or error body, with the status it goes with.
 */
export async function readiness(deps: { sql: Sql; redis: Redis }) {
  const [postgres, redis] = await Promise.all([probe("postgres", () => deps.sql`select 1`), probe("redis", () => deps.redis.ping())]);
  const details = { postgres, redis, redisMaxmemoryPolicy: redis === "ok" ? await readMaxmemoryPolicy(deps.redis) : null };
  if (postgres === "ok" && redis === "ok") return { status: 200, body: { status: "ready" as const, ...details } };
  const down = [postgres !== "ok" && "Postgres", redis !== "ok" && "Redis"].filter(Boolean).join(" and ");
  return {
    status: 503,
    body: { error: { code: "not_ready", message: `${down} unreachable; flowd cannot serve requests until it answers.`, details } },
  };
}
