/**
 * A job's status read from Redis's own state (its hash and the queue's sets), not from the event
 * stream: what the recorder falls back on when stream entries were trimmed before it read them,
 * and what the reconciler checks a stale row against. One pipeline per call.
 */
import type { RedisClient as Redis } from "../redis";
import { bullKey } from "../queues";
import type { StatusChange } from "../db/queries/status";
import { failureOf, parseJson, withAttempts } from "./status";
import { BULLMQ_FINISHED_STATUSES } from "../statuses";
import { carriedAttempts } from "./job-envelope";

export interface JobRef {
  queueName: string;
  jobId: string;
}

/** Redis's view of one job; `null` when Redis no longer has it (the reconciler's case). */
export type RedisJobState = {
  status: "waiting" | "waiting-children" | "delayed" | "active" | "completed" | "failed";
  result?: unknown;
  error?: { message: string; stack?: string; attemptsMade: number; code?: string };
  /** BullMQ's attempts count (`atm`), set once an attempt finished. */
  attemptsMade?: number;
  /** The hash's `processedOn` (the last start) and `finishedOn`, epoch ms, when set. */
  startedMs?: number;
  /** Delayed: when its delay (or backoff) ends, epoch ms. */
  readyMs?: number;
  finishedMs?: number;
} | null;

const PER_JOB = 6;
const FINISHED: ReadonlySet<string> = new Set(BULLMQ_FINISHED_STATUSES);

export async function readJobStates(redis: Redis, prefix: string, jobs: JobRef[]): Promise<RedisJobState[]> {
  if (jobs.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const j of jobs) {
    const queueKey = (part: string) => bullKey(prefix, j.queueName, part);
    pipeline.hmget(bullKey(prefix, j.queueName, j.jobId), "name", "returnvalue", "failedReason", "stacktrace", "atm", "processedOn", "finishedOn", "opts");
    pipeline.zscore(queueKey("completed"), j.jobId);
    pipeline.zscore(queueKey("failed"), j.jobId);
    pipeline.exists(bullKey(prefix, j.queueName, j.jobId, "lock"));
    pipeline.zscore(queueKey("delayed"), j.jobId);
    pipeline.zscore(queueKey("waiting-children"), j.jobId);
  }
  const replies = await pipeline.exec();
  if (!replies) throw new Error("Redis gave no answer to the job state read");
  const failure = replies.find(([err]) => err);
  if (failure) throw failure[0];
  return jobs.map((_, i) => {
    const at = (k: number) => replies[i * PER_JOB + k]![1];
    const [name, returnvalue, failedReason, stacktrace, atm, processedOn, finishedOn, opts] = at(0) as (string | null)[];
    if (name === null || name === undefined) return null;
    const attemptsMade = atm ? Number(atm) + carriedAttempts(opts) : undefined;
    const times = { ...(processedOn ? { startedMs: Number(processedOn) } : {}), ...(finishedOn ? { finishedMs: Number(finishedOn) } : {}) };
    if (at(1) !== null) return { status: "completed", result: parseJson(returnvalue), attemptsMade, ...times };
    if (at(2) !== null) {
      const stacks = parseJson(stacktrace);
      const stack = Array.isArray(stacks) && stacks.length > 0 ? String(stacks[stacks.length - 1]) : undefined;
      const failed = withAttempts(failureOf(failedReason), attemptsMade, stack);
      return { status: "failed", error: failed.error, attemptsMade: failed.attemptsMade, ...times };
    }
    if (Number(at(3)) === 1) return { status: "active", ...(times.startedMs ? { startedMs: times.startedMs } : {}) };
    // The delayed set's score is the due time (ms) shifted left 12 bits: when the job becomes ready.
    if (at(4) !== null) return { status: "delayed", readyMs: Math.floor(Number(at(4)) / 0x1000) };
    if (at(5) !== null) return { status: "waiting-children" };
    return { status: "waiting" };
  });
}

export const isFinishedInRedis = (state: RedisJobState) => state !== null && FINISHED.has(state.status);

/**
 * The status change that brings a row to Redis's state, positioned at `streamId`: a stream entry
 * read before the state (so every later entry still applies on top, and no older one can undo it).
 */
export function changeFromState(jobId: string, state: NonNullable<RedisJobState>, streamId: string): StatusChange {
  return {
    jobId,
    status: state.status,
    ...(state.status === "completed" ? { result: state.result } : {}),
    ...(state.error ? { error: state.error } : {}),
    ...(state.attemptsMade !== undefined && FINISHED.has(state.status) ? { attemptsMade: state.attemptsMade } : {}),
    starts: 0,
    streamId,
    ...(state.startedMs !== undefined ? { startedMs: state.startedMs } : {}),
    ...(state.readyMs !== undefined ? { readyMs: state.readyMs } : {}),
    ...(state.finishedMs !== undefined && FINISHED.has(state.status) ? { finishedMs: state.finishedMs } : {}),
  };
}

