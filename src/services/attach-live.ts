/**
 * Jobs still live in Redis (running, parked, waiting) that an add ties to a new parent instead of
 * running them again: a retry re-adds a failed parent under a new id while some of its children
 * never failed. BullMQ does the tying itself when a flow add names an existing job id (a
 * "duplicate"): a completed one hands its result to the new parent, a live one becomes its pending
 * dependency and points at it, so its own completion releases the parent. BullMQ refuses (-7) while
 * the job's previous parent still exists, and cannot see a failure that happened before the tie;
 * these two steps, around the add, cover both.
 */
import { Job } from "bullmq";
import { parseJobKey, type Producer } from "../queues";
import { deferFailure, failedTies, jobKeyOf, liveJobs } from "./bull-data";
import { withTimeout } from "../timeout";
import type { Shard } from "../shards";
import type { FlowdFlowJob } from "./flow-redis";

const REDIS_TIMEOUT_MS = 3_000;

export interface Attached {
  child: FlowdFlowJob;
  parent: FlowdFlowJob;
}

/** A job row's own id: a retried job runs under `<id>-<generation>`. */
export const rowIdOf = (jobId: string) => jobId.replace(/-\d+$/, "");

const idOf = (node: FlowdFlowJob) => node.opts.jobId!;

/**
 * Before the add: finds the attached leaves of `trees`, drops those Redis no longer has (lost jobs
 * are the reconciler's to rebuild; added here they would run as new leaves), and removes each one's
 * previous parent — an earlier run of the same row, failed — without its children, so BullMQ lets
 * the job change parents. Throws if that parent cannot go yet: the add must not run half-tied.
 */
export async function prepareAttached(producer: Producer, shard: Shard, trees: FlowdFlowJob[]): Promise<Attached[]> {
  const found: Attached[] = [];
  const visit = (node: FlowdFlowJob) => {
    for (const child of node.children ?? []) {
      if (child.attached) found.push({ child, parent: node });
      else visit(child);
    }
  };
  for (const tree of trees) visit(tree);
  if (found.length === 0) return [];
  const keyOf = (node: FlowdFlowJob) => jobKeyOf(producer, shard, node.queueName!, idOf(node));
  const replies = await withTimeout(
    liveJobs(producer, shard, found.map(({ child }) => ({ queue: child.queueName!, jobId: idOf(child) }))),
    REDIS_TIMEOUT_MS,
    "reading live children",
  );
  const kept: Attached[] = [];
  for (const [i, link] of found.entries()) {
    const { exists, parentKey: previous } = replies[i]!;
    if (!exists) {
      link.parent.children = (link.parent.children ?? []).filter((c) => c !== link.child) as typeof link.parent.children;
      continue;
    }
    kept.push(link);
    const stale = typeof previous === "string" ? parseJobKey(previous) : null;
    if (!stale || previous === keyOf(link.parent) || rowIdOf(stale.jobId) !== rowIdOf(idOf(link.parent))) continue;
    const removed = await withTimeout(producer.at(shard).queue(stale.queue).remove(stale.jobId, { removeChildren: false }), REDIS_TIMEOUT_MS, "removing a previous run");
    if (removed === 0) throw new Error(`the previous run ${stale.jobId} is still held by a worker`);
  }
  return kept;
}

/**
 * After the add: a tied job that had already failed before the tie (its failure reached no parent)
 * would leave the new parent waiting for ever. It is untied, and under flowd's default policy the
 * parent is marked to fail as BullMQ would have failed it ("child … failed", BullMQ's deferred
 * failure, which any worker applies when it picks the parent up). A job that failed after the tie
 * was handled by BullMQ already: it is no longer among the parent's dependencies.
 */
export async function settleAttached(producer: Producer, shard: Shard, attached: Attached[]) {
  if (attached.length === 0) return;
  const at = producer.at(shard);
  const keyOf = (node: FlowdFlowJob) => jobKeyOf(producer, shard, node.queueName!, idOf(node));
  const replies = await withTimeout(
    failedTies(
      producer,
      shard,
      attached.map(({ child, parent }) => ({ child: { queue: child.queueName!, jobId: idOf(child) }, parent: { queue: parent.queueName!, jobId: idOf(parent) } })),
    ),
    REDIS_TIMEOUT_MS,
    "checking live children",
  );
  for (const [i, { child, parent }] of attached.entries()) {
    const { failed, pending } = replies[i]!;
    if (!failed || !pending) continue;
    try {
      if (child.opts.failParentOnFailure) await deferFailure(producer, shard, parent.queueName!, idOf(parent), `child ${keyOf(child)} failed`);
      const job = await Job.fromId(at.queue(child.queueName), idOf(child));
      await job?.removeChildDependency();
    } catch {
      // The parent or the child left Redis meanwhile (a cancel, a delete): nothing waits on the tie any more.
    }
  }
}
