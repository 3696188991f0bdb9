import { pruneDone, returnLost, runningSince } from "../db/queries/webhook-outbox";
import { bullKey } from "../queues";
import { shardPrefix } from "../shards";
import type { ServiceDeps } from "./deps";
import { handoffJobId } from "./webhook-dispatch";
import { WEBHOOKS_QUEUE } from "./webhooks";

const PER_PASS = 1000;

/**
 * Webhook deliveries Redis lost (keys deleted, a Redis restarted empty): outbox rows handed to Redis
 * more than `graceMs` ago whose job Redis no longer has go back to pending, keeping their due time,
 * and the dispatcher hands them out again. Only rows in Redis can be lost this way: a delivery
 * waiting for its next attempt waits as a row, so its schedule survives anything Redis does.
 * Returns how many were given back.
 */
export async function reconcileLostDeliveries(deps: Pick<ServiceDeps, "db" | "producer" | "config">, graceMs: number): Promise<number> {
  const running = await runningSince(deps.db, graceMs, PER_PASS);
  if (running.length === 0) return 0;
  const prefix = shardPrefix(deps.config.prefix, deps.producer.home);
  const replies = await deps.producer.redis.pipeline(running.map((h) => ["exists", bullKey(prefix, WEBHOOKS_QUEUE, handoffJobId(h))])).exec();
  if (!replies) throw new Error("Redis gave no answer to the delivery check");
  // A job finished (removed) after its row was read changed the row too: returnLost's compare-and-set skips it.
  const lost = running.filter((_, i) => !replies[i]?.[0] && Number(replies[i]?.[1]) === 0);
  return returnLost(deps.db, lost);
}

/** How long ended deliveries keep their row: reading the same events again within it adds nothing twice. */
const DONE_KEPT_MS = 24 * 3600_000;

/** Deletes ended outbox rows past DONE_KEPT_MS, a bounded batch per pass. */
export const pruneEndedDeliveries = (deps: Pick<ServiceDeps, "db">) => pruneDone(deps.db, DONE_KEPT_MS, 5000);
