import { Job, UnrecoverableError } from "bullmq";
import type { Db } from "../db/client";
import { overdueJobs, type ExpiredJob } from "../db/queries/expiry";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { claimWaiting } from "./bull-data";
import { newId } from "../ids";

/** The error code of a job that expired (opts.expireAfterMs): it never started. */
export const EXPIRED_CODE = "expired";

const EXPIRED_PREFIX = "expired: the job did not start within its expireAfterMs";

/** BullMQ's failedReason for an expired job; the recorder knows it by this text (isExpiredReason). */
export const expiredReason = (ms: number) => `${EXPIRED_PREFIX} (${ms} ms) of becoming ready; no attempt was made`;

export const isExpiredReason = (reason: string | null | undefined) => typeof reason === "string" && reason.startsWith(EXPIRED_PREFIX);

/**
 * One pass of the expiry sweep: Postgres says which jobs are overdue (it is the truth of when a job
 * became ready and whether it started); each still waiting in Redis is failed there with code
 * `expired`, and the recorder writes the row — and fails its parent, or cancels its graph
 * dependents — as it does for any failure. One a worker already took is left to run (the worker's
 * own check at start fails it if it is overdue: src/workers/processor.ts). Safe in several processes
 * at once: only one claim of a job succeeds. Returns how many jobs it expired.
 */
export async function expireOverdue(deps: { db: Db; producer: Producer; log: Logger }, limit = 200): Promise<number> {
  let expired = 0;
  for (const row of await overdueJobs(deps.db, limit)) {
    try {
      if (await expireOne(deps, row)) expired++;
    } catch (err) {
      // Claimed but not failed (Redis went away): the claim's lock lapses and BullMQ's stalled-job
      // check puts the job back in `wait`, where this sweep or a worker's check finds it again.
      deps.log.warn("could not expire a job; trying again next pass", { jobId: row.jobId, err: String(err) });
    }
  }
  if (expired > 0) deps.log.info("expired jobs that did not start within their expireAfterMs", { count: expired });
  return expired;
}

async function expireOne(deps: { producer: Producer }, row: ExpiredJob): Promise<boolean> {
  const token = `expiry-${newId()}`;
  // Out of `wait` (or prioritized, or paused) into `active` under a lock of our own, in one step: a
  // worker that took it first wins. BullMQ has no call that fails a job it is not running; once
  // active, its own moveToFailed does the rest — the failed set, the event the recorder reads, and
  // the parent's failure policy (failParentOnFailure…) exactly as for a failed attempt.
  if (!(await claimWaiting(deps.producer, row.shard, row.queueName, row.jobId, token, 30_000))) return false;
  const job = await Job.fromId(deps.producer.at(row.shard).queue(row.queueName), row.jobId);
  if (!job) return false;
  await job.moveToFailed(new UnrecoverableError(expiredReason(row.expireAfterMs)), token, false);
  return true;
}
