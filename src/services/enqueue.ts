import type { Logger } from "../log";
import { bullKey, timeAdd, type Producer } from "../queues";
import { withTimeout } from "../timeout";
import type { Shard } from "../shards";
import { buildRedisTrees, type EnqueueRow, type FlowdFlowJob } from "./flow-redis";
import { prepareAttached, settleAttached } from "./attach-live";
import { META_KEY, type JobMeta } from "./job-envelope";

/** How long an add may wait for Redis before the caller answers and leaves the rows `pending`. */
export const ADD_TIMEOUT_MS = 3_000;


/**
 * Adds a set of tracked rows' `pending` jobs to Redis. The rows leave `pending` when the status
 * recorder reads BullMQ's own events for them — one writer for statuses, no race with a worker
 * that already started the job. Safe to repeat: BullMQ ignores an add whose job id exists.
 * Returns false when there was nothing to add. `resumeAtMs`: see buildRedisTrees.
 */
export async function enqueueRows(deps: { producer: Producer }, rows: EnqueueRow[], adding?: ReadonlySet<string>, resumeAtMs?: number): Promise<boolean> {
  const trees = buildRedisTrees(rows, adding, resumeAtMs);
  if (trees.length === 0) return false;
  await addTrees(deps.producer, rows[0]!.shard, trees);
  return true;
}

/**
 * Adds whole BullMQ trees of one shard in one call (one MULTI for the lot), giving up after
 * ADD_TIMEOUT_MS. Live jobs the trees attach (see attach-live.ts) are readied before and checked after.
 */
export async function addTrees(producer: Producer, shard: Shard, trees: FlowdFlowJob[]) {
  const { flowProducer } = producer.at(shard);
  const attached = await prepareAttached(producer, shard, trees);
  await giveKeptResults(producer, shard, trees);
  const [first] = trees;
  const adding: Promise<unknown> = trees.length === 1 && first ? flowProducer.add(first) : flowProducer.addBulk(trees);
  await timeAdd(adding, ADD_TIMEOUT_MS, "adding jobs");
  await settleAttached(producer, shard, attached);
}

function keepInOpts(trees: FlowdFlowJob[]) {
  const visit = (node: FlowdFlowJob) => {
    if (node.kept) {
      const kept = Object.fromEntries(Object.entries(node.kept).map(([jobId, k]) => [jobId, k.result ?? null]));
      const keptQueues = Object.fromEntries(Object.entries(node.kept).map(([jobId, k]) => [jobId, k.queue]));
      node.opts = { ...node.opts, [META_KEY]: { ...node.opts[META_KEY], kept, keptQueues } as JobMeta };
      delete node.kept;
    }
    for (const child of node.children ?? []) visit(child);
  };
  for (const tree of trees) visit(tree);
}

/** `keepChildren`: remove only the jobs named, not the children BullMQ lists under them (a retry keeps live ones). */
type Removal = { jobId: string; queueName: string; shard: Shard; depth?: number; keepChildren?: boolean };

/** Waits between background attempts at jobs a worker still held: about a minute in all. */
const REMOVAL_RETRIES_MS = [250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 30_000];

/**
 * Removes jobs from Redis, parents before children: removing a child first would release its
 * parent to run. A job that is running, or whose child is, cannot be removed yet (cancel aborts it
 * through the broadcast); those are tried again in the background until the worker lets go, so a
 * cancelled flow leaves nothing behind in Redis to run or to count.
 */
export async function removeFromRedis(deps: { producer: Producer; log: Logger }, rows: Removal[]) {
  const left = await removalPass(deps, rows);
  if (left.length > 0) void removeLater(deps, left);
}

async function removeLater(deps: { producer: Producer; log: Logger }, rows: Removal[]) {
  let left = rows;
  for (const ms of REMOVAL_RETRIES_MS) {
    await Bun.sleep(ms);
    if (deps.producer.closed) return; // shutting down: the next cancel or the retention cleans up
    left = await removalPass(deps, left).catch(() => left);
    if (left.length === 0) return;
  }
  deps.log.warn("jobs still held by a worker after a minute; they stay in Redis until it lets go", {
    count: left.length,
    jobIds: left.slice(0, 10).map((r) => r.jobId),
  });
}

/** One pass, parents first; returns the jobs not removed (held by a worker, or Redis refused). */
async function removalPass(deps: { producer: Producer }, rows: Removal[]): Promise<Removal[]> {
  const byDepth = new Map<number, Removal[]>();
  for (const r of rows) {
    const level = byDepth.get(r.depth ?? 0) ?? [];
    level.push(r);
    byDepth.set(r.depth ?? 0, level);
  }
  const left: Removal[] = [];
  for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
    const level = byDepth.get(depth)!;
    const results = await Promise.allSettled(
      level.map((r) =>
        withTimeout(deps.producer.at(r.shard).queue(r.queueName).remove(r.jobId, { removeChildren: !r.keepChildren }), ADD_TIMEOUT_MS, "removing a job"),
      ),
    );
    // BullMQ answers 0 for a job it may not remove because it, or a child, is locked.
    results.forEach((res, i) => {
      if (res.status === "rejected" || res.value === 0) left.push(level[i]!);
    });
  }
  return left;
}

/**
 * A parent re-added after a retry or a rebuild gets its completed children's results where BullMQ
 * keeps children's results — its `processed` hash, keyed by the child's Redis key — before the
 * parent exists, so any worker's `getChildrenValues()` (flowd's or the users' own, in any language)
 * sees every child, including those that are not run again. The parent's id is new on each run, so
 * nothing stale is read; the hash goes when BullMQ removes the job.
 */
async function giveKeptResults(producer: Producer, shard: Shard, trees: FlowdFlowJob[]) {
  // BullMQ's Postgres backend keeps children's results in rows tied to the parent, which cannot
  // exist before it: there the kept results ride in the job's opts, and a trigger in the queue
  // schema writes those rows as the job is inserted (see pg-queues.ts).
  if (producer.pg) return keepInOpts(trees);
  const { prefix } = producer.at(shard);
  const writes: [string, Record<string, string>][] = [];
  const visit = (node: FlowdFlowJob) => {
    if (node.kept) {
      const fields: Record<string, string> = {};
      for (const [jobId, kept] of Object.entries(node.kept)) fields[bullKey(prefix, kept.queue, jobId)] = JSON.stringify(kept.result ?? null);
      writes.push([bullKey(prefix, node.queueName, node.opts.jobId!, "processed"), fields]);
      delete node.kept;
    }
    for (const child of node.children ?? []) visit(child);
  };
  for (const tree of trees) visit(tree);
  if (writes.length === 0) return;
  const pipeline = producer.redis.pipeline();
  for (const [key, fields] of writes) pipeline.hset(key, fields);
  await withTimeout(pipeline.exec(), ADD_TIMEOUT_MS, "giving kept results");
}
