import { DelayedError, type Job } from "bullmq";
import type { Db } from "../db/client";
import { endWait, findEnded, findParked, hasUnclaimedOutcome, type TrackedJobTable } from "../db/queries/http-tasks";
import { parkWaitStep, wakeWaitStep, type WokenWait } from "../db/queries/waits";
import type { CallbackOutcome } from "../db/schema";
import { WaitRequest } from "../handlers/wait-steps";
import { PermanentFailure, type HandlerContext } from "../handlers/types";
import { NO_DEADLINE_MS } from "../scheduling/waiting-for";
import { readJob } from "../services/job-envelope";
import { newCallbackToken } from "../services/task-callbacks";

/**
 * BullMQ holds a parked job as delayed for at most this long; a longer wait wakes, finds its
 * deadline ahead and parks again (one short run a week), so no delay score nears a double's limit.
 */
const MAX_DELAY_MS = 7 * 86_400_000;

type Ctx = HandlerContext<unknown>;

/**
 * Runs a wait step (`wait`, `signal`, `approval`) the way a parked `http` task runs: its handler
 * says what to wait for, the wait is written parked (task_callbacks, `kind` = the reason) with its
 * job row (`active`, `waiting_for`, `parked_until`), and BullMQ holds the job as delayed until the
 * deadline — no worker slot, no lock, and the wake time is in Postgres and Redis both, so a worker
 * killed at any point loses nothing. A signal or a decision stores its outcome and promotes the job;
 * the re-run of the same attempt applies it here. At the deadline, a sleep completes and any other
 * wait fails with code `timed_out`.
 */
export function createWaitSteps(deps: { db: Db }) {
  return async function runWaitStep(job: Job, token: string | undefined, ctx: Ctx, call: (ctx: Ctx) => Promise<unknown>): Promise<unknown> {
    const jobId = job.id!;
    const { meta } = readJob(job);
    const attempt = attemptOf(job);
    // A wake-up of a parked attempt (or the first run of one Redis lost, re-added by the reconciler).
    if (job.attemptsStarted > job.attemptsMade + 1 || (meta.resumesParked && job.attemptsMade === 0)) {
      const woken = await wakeWaitStep(deps.db, jobId, attempt);
      if (woken?.ended && woken.outcome) return apply(woken.outcome);
      if (woken?.ended) return slept(woken);
      if (woken) return wake(job, token, woken);
      // The worker that ended this wait died before BullMQ recorded the attempt: end it the same way.
      const ended = await findEnded(deps.db, jobId, attempt);
      if (ended?.outcome) return apply(ended.outcome);
      if (ended?.resolution === "completed") return slept(ended);
      if (ended?.resolution === "timed_out") throw timedOut(ended.deadline);
    }
    const request = await call(ctx);
    if (!(request instanceof WaitRequest)) return request;
    // An `until` already past runs at once: nothing to park for.
    if (request.reason === "sleep" && request.until && request.until.getTime() <= Date.now()) return slept({ deadline: request.until, terms: request.terms });
    const deadline = request.until ?? new Date(Date.now() + NO_DEADLINE_MS);
    const { key, ...terms } = request.terms;
    const parked = await parkWaitStep(deps.db, {
      tokenHash: newCallbackToken().hash,
      jobId,
      attempt,
      kind: request.reason,
      deadline,
      signalKey: key ?? null,
      terms,
    });
    if (!parked) throw new PermanentFailure("the job's row is gone or finished (cancelled or deleted); nothing to wait for");
    return park(job, token, deadline);
  };

  /** Moves the job to BullMQ's delayed set until its deadline and frees this worker slot. */
  async function park(job: Job, token: string | undefined, deadline: Date): Promise<never> {
    await job.moveToDelayed(Math.min(deadline.getTime(), Date.now() + MAX_DELAY_MS), token);
    // A signal that landed between the park and the move found the job still active and could not
    // promote it: wake it now, or it would sleep until its deadline.
    if (await hasUnclaimedOutcome(deps.db, job.id!, attemptOf(job))) await job.promote().catch(() => {});
    throw new DelayedError();
  }

  async function wake(job: Job, token: string | undefined, parked: Pick<WokenWait, "tableName" | "tokenHash" | "outcome" | "deadline" | "kind" | "terms">): Promise<unknown> {
    const table = parked.tableName as TrackedJobTable;
    const jobId = job.id!;
    if (parked.outcome) return end(table, jobId, parked.tokenHash, parked.outcome);
    // Woken early (a wait longer than one delay, or a promote with nothing stored): wait on.
    if (Date.now() < parked.deadline.getTime()) return park(job, token, parked.deadline);
    if (parked.kind === "sleep") {
      // Stays parked until the recorder writes `completed`, like a completed callback.
      await endWait(deps.db, { tokenHash: parked.tokenHash, table, jobId, resolution: "completed", unpark: false });
      return slept(parked);
    }
    if (await endWait(deps.db, { tokenHash: parked.tokenHash, table, jobId, resolution: "timed_out", unpark: true })) throw timedOut(parked.deadline, parked.kind);
    // A signal or decision won the race with the deadline: apply it.
    const won = await findParked(deps.db, jobId, attemptOf(job));
    if (won?.outcome) return end(table, jobId, won.tokenHash, won.outcome);
    if (won) return park(job, token, won.deadline);
    throw timedOut(parked.deadline, parked.kind);
  }

  async function end(table: TrackedJobTable, jobId: string, tokenHash: string, outcome: CallbackOutcome): Promise<unknown> {
    const completes = outcome.kind === "complete";
    await endWait(deps.db, { tokenHash, table, jobId, resolution: completes ? "completed" : "failed", unpark: !completes });
    return apply(outcome);
  }
}

/** A sleep's result: the one its handler asked for (the durable `sleep`'s `{ slept }`), else `{ waitedUntil }`. */
const slept = (w: Pick<WokenWait, "deadline" | "terms">) => (w.terms?.result !== undefined ? w.terms.result : { waitedUntil: w.deadline.toISOString() });

const attemptOf = (job: Job) => (readJob(job).meta.attemptsCarried ?? 0) + job.attemptsMade;

/** A failure's code rides at the head of its message (`[code] …`); the recorder lifts it into `error.code`. */
function timedOut(deadline: Date, kind = "signal"): PermanentFailure {
  const what = kind === "approval" ? "no decision" : "no signal";
  return new PermanentFailure(`[timed_out] ${what} came within timeoutMs (by ${deadline.toISOString()})`);
}

function apply(outcome: CallbackOutcome): unknown {
  if (outcome.kind === "complete") return outcome.result;
  throw new PermanentFailure(outcome.message);
}
