import type { FlowJob } from "bullmq";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { withTimeout } from "../timeout";
import { buildRedisTrees, type EnqueueRow } from "./flow-redis";

/** How long an add may wait for Redis before the caller answers and leaves the rows `pending`. */
export const ADD_TIMEOUT_MS = 3_000;


/**
 * Adds a set of tracked rows' `pending` jobs to Redis. The rows leave `pending` when the status
 * recorder reads BullMQ's own events for them — one writer for statuses, no race with a worker
 * that already started the job. Safe to repeat: BullMQ ignores an add whose job id exists.
 * Returns false when there was nothing to add.
 */
export async function enqueueRows(deps: { producer: Producer }, rows: EnqueueRow[]): Promise<boolean> {
  const trees = buildRedisTrees(rows);
  if (trees.length === 0) return false;
  await addTrees(deps.producer, trees);
  return true;
}

/** Adds whole BullMQ trees in one call (one MULTI for the lot). */
export async function addTrees(producer: Producer, trees: FlowJob[]) {
  const [first] = trees;
  const adding: Promise<unknown> = trees.length === 1 && first ? producer.flowProducer.add(first) : producer.flowProducer.addBulk(trees);
  await withTimeout(adding, ADD_TIMEOUT_MS, "adding jobs");
}

/**
 * Removes jobs from Redis, parents before children: removing a child first would release its
 * parent to run. Running (locked) jobs cannot be removed; they are aborted by the cancel broadcast.
 */
export async function removeFromRedis(
  deps: { producer: Producer; log: Logger },
  rows: { jobId: string; queueName: string; depth?: number }[],
) {
  const byDepth = new Map<number, typeof rows>();
  for (const r of rows) {
    const level = byDepth.get(r.depth ?? 0) ?? [];
    level.push(r);
    byDepth.set(r.depth ?? 0, level);
  }
  for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
    const results = await Promise.allSettled(
      byDepth.get(depth)!.map((r) => withTimeout(deps.producer.queue(r.queueName).remove(r.jobId), ADD_TIMEOUT_MS, "removing a job")),
    );
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length > 0) deps.log.warn("some jobs could not be removed from Redis", { count: failed.length, reason: String((failed[0] as PromiseRejectedResult).reason) });
  }
}
