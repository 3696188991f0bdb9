/**
 * The one rule for turning BullMQ's own events into job status changes. Every transition —
 * including those made inside Redis alone (a parent released by its last child, a delayed job
 * coming due, a retry started from another tool) — appears in the queue's event stream, so the
 * recorder follows the stream instead of trusting whoever happened to run the job.
 */
import { parseJobKey } from "../queues";
import type { StatusChange } from "../db/queries/status";
import { BULLMQ_FINISHED_STATUSES } from "../statuses";
import { EXPIRED_CODE, isExpiredReason } from "./expiry";

export interface StreamEvent {
  queue: string;
  /** Redis stream entry id, `ms-seq`; increases within a queue's stream. */
  id: string;
  fields: Record<string, string>;
}


const finishedByBullmq: ReadonlySet<string> = new Set(BULLMQ_FINISHED_STATUSES);

const DIRECT: Record<string, string> = {
  waiting: "waiting",
  "waiting-children": "waiting-children",
  delayed: "delayed",
  active: "active",
  completed: "completed",
  failed: "failed",
  // Removed by someone else (a cancel here already wrote `cancelled`): the job will not run.
  removed: "cancelled",
};

export function toStatusChange(e: StreamEvent): StatusChange | null {
  const status = DIRECT[e.fields.event ?? ""];
  const jobId = e.fields.jobId;
  if (!status || !jobId) return null;
  const change: StatusChange = { jobId, status, streamId: e.id, starts: status === "active" ? 1 : 0 };
  // The entry's own time (Redis's clock, `ms-seq`) is when the job moved: timings cost no read.
  const at = Number(e.id.split("-")[0]);
  if (status === "waiting") change.readyMs = at;
  // A delayed job is ready when its delay (or retry backoff) ends: BullMQ's entry says when. Kept,
  // the reconciler re-adds a job Redis lost for what is left of it, not for a whole delay again.
  if (status === "delayed" && Number(e.fields.delay) > 0) change.readyMs = Number(e.fields.delay);
  if (status === "active") change.startedMs = at;
  if (finishedByBullmq.has(status)) change.finishedMs = at;
  if (status === "completed") change.result = parseJson(e.fields.returnvalue);
  if (status === "failed") change.error = failureOf(e.fields.failedReason);
  return change;
}

/** A failure as the row stores it; an expired job (opts.expireAfterMs) says so in `code`. */
export function failureOf(reason: string | null | undefined): NonNullable<StatusChange["error"]> {
  if (isExpiredReason(reason)) return { message: reason!, attemptsMade: 0, code: EXPIRED_CODE };
  // A code flowd gave the failure (`[timed_out] …`, as wait steps do) moves from the message into `code`.
  const coded = /^\[([a-z_]+)\] ([\s\S]*)$/.exec(reason ?? "");
  if (coded) return { message: coded[2]!, code: coded[1]!, attemptsMade: 0 };
  return { message: userFacingReason(reason ?? "failed"), attemptsMade: 0 };
}

/**
 * An expired job made no attempt, though BullMQ counted one when it failed the job: its count and
 * stack (flowd's, not the handler's) are not the job's. Otherwise the attempts and the last stack from Redis.
 */
export function withAttempts(error: NonNullable<StatusChange["error"]>, attemptsMade: number | undefined, stack: string | undefined) {
  if (error.code === EXPIRED_CODE) return { error, attemptsMade: 0 };
  return { error: { message: error.message, ...(error.code ? { code: error.code } : {}), ...(stack ? { stack } : {}), attemptsMade: attemptsMade ?? 0 }, attemptsMade };
}

/** BullMQ fails a parent with "child <prefix>:<queue>:<id> failed", naming a Redis key, not a job id. */
const CHILD_FAILED = /^child (\S+) failed$/;

/** Whether BullMQ failed this job because a child failed: it does so in Redis, without running the job. */
export const failedByChild = (reason: string | undefined) => reason !== undefined && CHILD_FAILED.test(reason);

export function userFacingReason(reason: string): string {
  const key = CHILD_FAILED.exec(reason)?.[1];
  const child = key ? parseJobKey(key) : null;
  return child ? `child job ${child.jobId} (queue ${child.queue}) failed` : reason;
}

/** A JSON value BullMQ stored as text; text that is not JSON is kept as it is. */
export function parseJson(text: string | null | undefined): unknown {
  if (text === undefined || text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Folds a batch into one change per job — the last, carrying the count of starts before it and the
 * statuses it went through first (`trail`) — so a batch costs one row update per job while the
 * event triggers still log every transition, in order (drizzle/0029_batch_event_trails.sql). A
 * removal never hides a completion or failure seen earlier. The final state, result, error and
 * attempt count are exact.
 */
export function collapse(changes: StatusChange[]): StatusChange[] {
  const last = new Map<string, StatusChange>();
  for (const c of changes) {
    const prev = last.get(c.jobId);
    if (prev && c.status === "cancelled" && finishedByBullmq.has(prev.status)) continue;
    // Timings fold like starts: the latest of each kind seen in the batch is the one kept.
    last.set(
      c.jobId,
      prev
        ? {
            ...c,
            starts: prev.starts + c.starts,
            readyMs: c.readyMs ?? prev.readyMs,
            startedMs: c.startedMs ?? prev.startedMs,
            finishedMs: c.finishedMs ?? prev.finishedMs,
            trail: [...(prev.trail ?? []), { status: prev.status, streamId: prev.streamId }],
          }
        : c,
    );
  }
  return [...last.values()];
}
