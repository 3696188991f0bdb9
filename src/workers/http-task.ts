import { DelayedError, type Job } from "bullmq";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { claimOutcome, endWait, findEnded, findParked, hasUnclaimedOutcome, offerCallback, parkOffer, withdrawOffer, type ParkedCallback, type TrackedJobTable } from "../db/queries/http-tasks";
import type { CallbackOutcome } from "../db/schema";
import { Parked, RetryLater } from "../handlers/http";
import { PermanentFailure, type HandlerContext, type TaskCall } from "../handlers/types";
import { newCallbackToken } from "../services/task-callbacks";
import { openKeys, signatureHeader, signingKeys } from "../services/signing-secrets";
import { readJob } from "../services/job-envelope";

/** A parked attempt whose wait ended without a callback: retried per `opts` like any failure. */
export class CallbackTimeout extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CallbackTimeout";
  }
}

export interface HttpTaskDeps {
  db: Db;
  config: Pick<Config, "secretKey">;
  /** The API's base as services reach it (FLOWD_PUBLIC_URL, or the API's own address). */
  publicUrl: () => string;
}

type Ctx = HandlerContext<unknown>;

/**
 * Runs one attempt of an `http` task. The request is signed with the user's secret and offers a
 * single-use callback URL (its row is written first, so a callback never outruns it). A `202`
 * parks the job: BullMQ holds it as delayed until the deadline (no worker slot is held) while its
 * row stays `active`; a callback stores its outcome and wakes the job early, and the re-run of the
 * same attempt — BullMQ's `attemptsMade` does not move while parked — applies it here.
 */
export function createHttpTasks(deps: HttpTaskDeps) {
  return async function runHttpTask(job: Job, token: string | undefined, ctx: Ctx, call: (ctx: Ctx) => Promise<unknown>): Promise<unknown> {
    const jobId = job.id!;
    const { meta } = readJob(job);
    // The attempt's number in this run: BullMQ's count, plus the attempts the run made before Redis
    // lost the job and the reconciler added it again (its callbacks moved along, numbers and all).
    const attempt = (meta.attemptsCarried ?? 0) + job.attemptsMade;
    // Started more often than attempts made: a wake-up (or a stalled re-run) of one parked attempt;
    // or the first run of a parked task Redis lost, which resumes the same wait.
    if (job.attemptsStarted > job.attemptsMade + 1 || (meta.resumesParked && job.attemptsMade === 0)) {
      const outcome = await claimOutcome(deps.db, jobId, attempt);
      if (outcome) return apply(outcome);
      const parked = await findParked(deps.db, jobId, attempt);
      if (parked) return wake(job, token, parked);
      // The worker that ended this attempt's wait died before BullMQ recorded the attempt: apply
      // the same end again. Calling the service anew would drop the callback it was told we took.
      const ended = await findEnded(deps.db, jobId, attempt);
      if (ended?.outcome && ended.resolution !== "timed_out") return apply(ended.outcome);
      if (ended?.resolution === "timed_out") throw new CallbackTimeout(`no callback came within the wait that ended by ${ended.deadline.toISOString()}`);
    }
    const { token: callbackToken, hash } = newCallbackToken();
    const offer = await offerCallback(deps.db, { tokenHash: hash, jobId, attempt, deadline: new Date(Date.now() + 7 * 86_400_000) });
    if (!offer) throw new PermanentFailure("the job's row is gone (its flow was deleted); nothing was called");
    const keys = offer.secret ? openKeys(deps.config, { ...offer, secret: offer.secret }) : await signingKeys(deps, offer.userId);
    const task: TaskCall = {
      headers(body) {
        const id = `task_${ctx.job.id}_${ctx.attemptsMade + 1}`;
        const timestamp = Math.floor(Date.now() / 1000);
        return {
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signatureHeader(keys, id, timestamp, body),
          "flowd-job-id": ctx.job.id,
          ...(ctx.job.flowId ? { "flowd-flow-id": ctx.job.flowId } : {}),
          "flowd-attempt": String(ctx.attemptsMade + 1),
          "flowd-callback-url": `${deps.publicUrl()}/callbacks/${callbackToken}`,
        };
      },
    };
    let answer: unknown;
    try {
      answer = await call({ ...ctx, task });
    } catch (err) {
      await withdrawOffer(deps.db, hash);
      if (err instanceof RetryLater) holdNextAttempt(job, err.afterMs);
      throw err;
    }
    if (!(answer instanceof Parked)) {
      await withdrawOffer(deps.db, hash);
      return answer;
    }
    const deadline = new Date(Date.now() + answer.callbackTimeoutMs);
    const parked = await parkOffer(deps.db, { tokenHash: hash, table: offer.table, jobId, attempt, deadline, heartbeatTimeoutMs: answer.heartbeatTimeoutMs });
    if (!parked) throw new CallbackTimeout("the callback's wait ended before the 202 was read");
    if (parked.outcome) return end(offer.table, jobId, hash, parked.outcome);
    const heartbeatBy = answer.heartbeatTimeoutMs === null ? null : new Date(Date.now() + answer.heartbeatTimeoutMs);
    return park(job, token, { tokenHash: hash, deadline, heartbeatDeadline: heartbeatBy });
  };

  /** Moves the job to BullMQ's delayed set until its next deadline and frees this worker slot. */
  async function park(job: Job, token: string | undefined, wait: Pick<ParkedCallback, "tokenHash" | "deadline" | "heartbeatDeadline">): Promise<never> {
    const wakeAt = Math.min(wait.deadline.getTime(), wait.heartbeatDeadline?.getTime() ?? Infinity);
    await job.moveToDelayed(wakeAt, token);
    // A callback that landed between the park and the move found the job still active and could
    // not wake it: wake it now, or it would sleep until the deadline. Any URL of this attempt counts:
    // a service that dedups a repeated call (same webhook-id) reports on the URL it got first.
    if (await hasUnclaimedOutcome(deps.db, job.id!, attemptOf(job))) await job.promote().catch(() => {});
    throw new DelayedError();
  }

  async function wake(job: Job, token: string | undefined, parked: ParkedCallback): Promise<unknown> {
    const table = parked.tableName as TrackedJobTable;
    if (parked.outcome) return end(table, job.id!, parked.tokenHash, parked.outcome);
    const now = Date.now();
    const late =
      now >= parked.deadline.getTime()
        ? `no callback came within callbackTimeoutMs (by ${parked.deadline.toISOString()})`
        : parked.heartbeatDeadline && now >= parked.heartbeatDeadline.getTime()
          ? `no callback or heartbeat came within heartbeatTimeoutMs (by ${parked.heartbeatDeadline.toISOString()})`
          : null;
    // Woken before a deadline (a heartbeat moved it): wait again until the next one.
    if (!late) return park(job, token, parked);
    if (await endWait(deps.db, { tokenHash: parked.tokenHash, table, jobId: job.id!, resolution: "timed_out", unpark: true }))
      throw new CallbackTimeout(late);
    // The callback won the race with the deadline: apply it; or a heartbeat did: wait again.
    const won = await findParked(deps.db, job.id!, attemptOf(job));
    if (won?.outcome) return end(table, job.id!, won.tokenHash, won.outcome);
    if (won) return park(job, token, won);
    throw new CallbackTimeout(late);
  }

  /** Ends the wait with the callback's outcome, then applies it. */
  async function end(table: TrackedJobTable, jobId: string, tokenHash: string, outcome: CallbackOutcome): Promise<unknown> {
    const completes = outcome.kind === "complete";
    // A completed job stays parked until the recorder writes `completed`; a failed attempt's retry must be recorded.
    await endWait(deps.db, { tokenHash, table, jobId, resolution: completes ? "completed" : "failed", unpark: !completes });
    return apply(outcome);
  }
}

/** The callback attempt number of a job's current attempt (see runHttpTask). */
const attemptOf = (job: Job) => (readJob(job).meta.attemptsCarried ?? 0) + job.attemptsMade;

/** The job's result, or the attempt's failure, as the service's callback said. */
function apply(outcome: CallbackOutcome): unknown {
  if (outcome.kind === "complete") return outcome.result;
  const message = `the service reported failure: ${outcome.message}`;
  throw outcome.permanent ? new PermanentFailure(message) : new Error(message);
}

/**
 * BullMQ computes the next attempt's delay from the job's `backoff` when the attempt fails; this
 * attempt's own copy of the options is raised to at least `afterMs` (the stored options are not
 * touched, so later attempts back off as configured).
 */
function holdNextAttempt(job: Job, afterMs: number) {
  const configured = job.opts.backoff;
  const backoff = typeof configured === "number" ? { type: "fixed", delay: configured } : configured;
  const attempts = job.attemptsMade + 1;
  const base = !backoff ? 0 : backoff.type === "exponential" ? Math.round(2 ** (attempts - 1) * (backoff.delay ?? 0)) : (backoff.delay ?? 0);
  job.opts = { ...job.opts, backoff: { type: "fixed", delay: Math.max(base, afterMs) } };
}
