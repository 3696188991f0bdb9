import { bumpGeneration, flowJobsOf, flowsWithQueuedJobs, resetForRetry, type FlowJobRow } from "../db/queries/flows";
import { queuedJobs, resetJobForRetry } from "../db/queries/jobs";
import type { ServiceDeps } from "./deps";
import { enqueueRows } from "./enqueue";
import type { EnqueueRow } from "./flow-redis";
import { enqueueJob } from "./jobs";

const QUEUED = new Set(["waiting", "waiting-children", "delayed", "active"]);

export interface Repairs {
  flowsRebuilt: number;
  jobsRequeued: number;
  partialLosses: number;
}

type Deps = Pick<ServiceDeps, "db" | "producer" | "log" | "config">;

/** Which of these jobs Redis still has (one round trip). */
async function presentInRedis(deps: Deps, rows: { queueName: string; jobId: string }[]): Promise<boolean[]> {
  const replies = await deps.producer.redis
    .pipeline(rows.map((r) => ["exists", `${deps.config.prefix}:${r.queueName}:${r.jobId}`]))
    .exec();
  if (!replies) throw new Error("Redis gave no answer to the existence check");
  return replies.map(([err, n]) => !err && Number(n) === 1);
}

/**
 * Repairs what Redis lost while Postgres still expects it (keys deleted, a Redis without its data):
 * a flow whose queued jobs are all gone has its unfinished part added again under new ids —
 * completed jobs are never run again, their results reach their parents through the envelope —
 * and a single job that is gone is queued again. A flow that lost only some of its jobs is
 * reported, not touched: re-adding part of a tree under living parents is not safe.
 */
export async function reconcileLostJobs(deps: Deps, graceMs: number): Promise<Repairs> {
  const repairs: Repairs = { flowsRebuilt: 0, jobsRequeued: 0, partialLosses: 0 };
  for (const flowId of await flowsWithQueuedJobs(deps.db, graceMs, 100)) {
    const rows = await flowJobsOf(deps.db, flowId);
    const queued = rows.filter((r) => QUEUED.has(r.status));
    const present = await presentInRedis(deps, queued);
    if (present.some(Boolean)) {
      if (!present.every(Boolean)) repairs.partialLosses++;
      continue;
    }
    await rebuildFlow(deps, flowId, queued);
    repairs.flowsRebuilt++;
  }
  const jobs = await queuedJobs(deps.db, graceMs, 500);
  const present = jobs.length > 0 ? await presentInRedis(deps, jobs) : [];
  for (const [i, job] of jobs.entries()) {
    if (present[i]) continue;
    await enqueueJob(deps, await resetJobForRetry(deps.db, job.id));
    repairs.jobsRequeued++;
  }
  if (repairs.flowsRebuilt + repairs.jobsRequeued + repairs.partialLosses > 0) deps.log.warn("repaired jobs Redis had lost", { ...repairs });
  return repairs;
}

async function rebuildFlow(deps: Deps, flowId: string, queued: FlowJobRow[]) {
  await deps.db.transaction(async (tx) => {
    const generation = await bumpGeneration(tx, flowId);
    await resetForRetry(tx, queued.map((r) => ({ id: r.id, job_id: `${r.id}-${generation}` })));
  });
  await enqueueRows(deps, (await flowJobsOf(deps.db, flowId)) as EnqueueRow[]);
}
