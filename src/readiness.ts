import type { RedisClient as Redis } from "./redis";
import type { Sql } from "postgres";
import { pingRedis, readMaxmemoryPolicy } from "./redis";
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

/** What a role adds to readiness: reasons it works but not as it should, and figures to show. */
export type DegradedCheck = () => Promise<{ degraded: string[]; details: Record<string, unknown> }>;

/**
 * The one readiness rule, for the API's /readyz and a worker's health port: Postgres and Redis
 * answer within 2 s. The reply is SPEC's success or error body, with the status it goes with. A
 * process that serves but falls short (`degraded`, e.g. nobody records statuses) stays 200: taking
 * it out of a load balancer would not help, so the reasons are in the body for monitors to alert on.
 */
export async function readiness(deps: { sql: Sql; redis: Redis | null; degraded?: DegradedCheck }) {
  // On the Postgres backend (no Redis) BullMQ's queues are in the database Postgres answers for.
  if (!deps.redis) {
    const postgres = await probe("postgres", () => deps.sql`select 1`);
    const details = { postgres, queueBackend: "postgres" as const };
    if (postgres === "ok") {
      const extra = deps.degraded ? await withTimeout(deps.degraded(), 2_000, "readiness checks").catch(() => null) : null;
      if (extra && extra.degraded.length > 0)
        return { status: 200, body: { status: "degraded" as const, ...details, ...extra.details, degraded: extra.degraded } };
      return { status: 200, body: { status: "ready" as const, ...details, ...extra?.details } };
    }
    return {
      status: 503,
      body: { error: { code: "not_ready", message: "Postgres unreachable; flowd cannot serve requests until it answers.", details } },
    };
  }
  const redisClient = deps.redis;
  const [postgres, redis] = await Promise.all([probe("postgres", () => deps.sql`select 1`), probe("redis", () => pingRedis(redisClient))]);
  const details = { postgres, redis, redisMaxmemoryPolicy: redis === "ok" ? await readMaxmemoryPolicy(redisClient) : null };
  if (postgres === "ok" && redis === "ok") {
    const extra = deps.degraded ? await withTimeout(deps.degraded(), 2_000, "readiness checks").catch(() => null) : null;
    if (extra && extra.degraded.length > 0)
      return { status: 200, body: { status: "degraded" as const, ...details, ...extra.details, degraded: extra.degraded } };
    return { status: 200, body: { status: "ready" as const, ...details, ...extra?.details } };
  }
  const down = [postgres !== "ok" && "Postgres", redis !== "ok" && "Redis"].filter(Boolean).join(" and ");
  return {
    status: 503,
    body: { error: { code: "not_ready", message: `${down} unreachable; flowd cannot serve requests until it answers.`, details } },
  };
}
