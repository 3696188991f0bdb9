import { DelayedError, UnrecoverableError, type Job } from "bullmq";
import type { Config } from "../config";
import { handlers, isHandlerName, isWaitStep, type HandlerName } from "../handlers/catalog";
import type { LoadedHandler } from "../handlers/loader";
import { PermanentFailure, type Handler, type JobIdentity } from "../handlers/types";
import { parseJobKey } from "../queues";
import { readJob, type JobMeta } from "../services/job-envelope";
import { expiredReason } from "../services/expiry";
import { raceAttempt, runUserCode } from "./user-code";
import type { createHttpTasks } from "./http-task";
import type { createWaitSteps } from "./wait-steps";
import { MAX_LINE_CHARS, type JobLogSink } from "./job-log-sink";
import type { createSpawnContexts } from "./spawn-context";

/** BullMQ's job log is for people reading bull-board: a runaway logger must not fill Redis. */
const MAX_BULL_LOG_LINES = 1000;

/**
 * Runs one job with its handler — a built-in from the catalog or one from a handler module — and
 * turns a cancel or a PermanentFailure into a failure without further attempts.
 */
export function createProcessor(
  config: Pick<Config, "prefix" | "allowPrivateUrls"> & Partial<Pick<Config, "maxResultBytes">>,
  modules: readonly LoadedHandler[] = [],
  logSink?: JobLogSink,
  httpTask?: ReturnType<typeof createHttpTasks>,
  spawnContexts?: ReturnType<typeof createSpawnContexts>,
  waitStep?: ReturnType<typeof createWaitSteps>,
) {
  const byName = new Map(modules.map((h) => [h.name, h]));
  return async (job: Job, token?: string, signal?: AbortSignal): Promise<unknown> => {
    const module = byName.get(job.name);
    if (!isHandlerName(job.name) && !module) throw new UnrecoverableError(`no handler named '${job.name}' on this worker`);
    if (module && !module.queues.includes(job.queueName))
      throw new UnrecoverableError(`handler '${job.name}' does not run on queue '${job.queueName}'`);
    const { data, meta } = readJob(job);
    if (meta.failedChild) throw new UnrecoverableError(`child job ${meta.failedChild} failed`);
    if (meta.attemptsCarried) carryExponentialBackoff(job, meta.attemptsCarried);
    // Overdue before its first start (the sweep had not reached it): fail it unrun, as the sweep would.
    const overdue = expiredAtStart(job, meta);
    if (overdue) throw new UnrecoverableError(expiredReason(overdue));
    // Kept results of children that are not run again are in the same place (see enqueue.ts); on
    // the Postgres backend also in the opts, which alone hold them for jobs added before its trigger.
    const children: Record<string, unknown> = { ...meta.kept };
    if (meta.parent) {
      const values = await job.getChildrenValues();
      for (const [key, value] of Object.entries(values)) children[parseJobKey(key)?.jobId ?? key] = value;
    }
    // A module handler on a flow job may add jobs to its flow and join on them (src/services/spawn.ts);
    // a wake-up of its parked join (a start that is no new attempt) parks again while the join lasts.
    const joins = module && meta.flowId && spawnContexts ? spawnContexts(job, token) : undefined;
    if (joins && (job.attemptsStarted > job.attemptsMade + 1 || meta.resumesParked)) await joins.resume();
    const abort = signal ?? new AbortController().signal;
    const who = identity(job, meta.flowId);
    const ctx = {
      ...(joins ? { spawn: joins.ctx.spawn, waitFor: joins.ctx.waitFor } : {}),
      data,
      children,
      ...(meta.parentKeys ? { parents: byKey(children, meta.parentKeys) } : {}),
      signal: abort,
      attemptsMade: (meta.attemptsBefore ?? 0) + job.attemptsMade,
      config,
      job: who,
      ...reporters(job, who.id, logSink),
    };
    // The job's own timeoutMs, else a module's default (see job-opts.ts).
    const timeoutMs = (job.opts as { timeoutMs?: number }).timeoutMs ?? module?.timeoutMs;
    const builtin = (signal: AbortSignal) =>
      job.name === "http" && httpTask
        ? httpTask(job, token, { ...ctx, signal }, (c) => handlers.http.run(c as Parameters<typeof handlers.http.run>[0]))
        : (isWaitStep(job.name) || job.name === "sleep") && waitStep
          ? waitStep(job, token, { ...ctx, signal }, (c) => handlers[job.name as HandlerName].run(c as Parameters<Handler["run"]>[0]))
          : handlers[job.name as keyof typeof handlers].run({ ...ctx, signal });
    try {
      // A built-in without a timeout heeds its signal: it runs as it is, without a race to set up per job.
      const result = module
        ? await runUserCode(module, ctx, abort, timeoutMs)
        : timeoutMs
          ? await raceAttempt(abort, timeoutMs, builtin)
          : await builtin(abort);
      // A handler that caught its join's JoinPending and returned still parks. Its lines go first:
      // once parked it holds no slot, and a worker killed then would lose lines still buffered.
      await logSink?.flush(who.id);
      await joins?.settle(false);
      if (config.maxResultBytes !== undefined) checkResultSize(result, config.maxResultBytes);
      return result;
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      // A cancelled job does not park: its attempt ends here.
      if (!abort.aborted) {
        await logSink?.flush(who.id);
        await joins?.settle(true);
      }
      if (abort.aborted) throw new UnrecoverableError(`cancelled: ${(err as Error)?.message ?? String(err)}`);
      if (err instanceof PermanentFailure || (err as { permanent?: unknown })?.permanent === true)
        throw new UnrecoverableError((err as Error).message);
      if (err instanceof Error) throw err;
      // A module may throw anything; BullMQ records only Errors faithfully.
      throw new Error(typeof err === "string" ? err : `the handler threw a non-Error value: ${safeString(err)}`);
    } finally {
      // The attempt's lines reach Postgres before its outcome does.
      await logSink?.flush(who.id);
    }
  };
}

/**
 * A result is stored in Redis and Postgres and handed to every dependent (an `echo` of three echoes
 * triples per layer): one without a bound can exhaust either. Over the bound, the attempt fails for
 * good, saying what to do, instead of the job completing with a value nothing can hold.
 */
function checkResultSize(result: unknown, maxBytes: number) {
  if (result === undefined) return;
  const bytes = Buffer.byteLength(JSON.stringify(result) ?? "");
  if (bytes > maxBytes)
    throw new PermanentFailure(
      `the result is ${bytes} bytes, over FLOWD_MAX_RESULT_BYTES (${maxBytes}): store large outputs elsewhere (a bucket, a table) and return a reference to them`,
    );
}

/** A graph job's dependencies' results, keyed by the dependencies' keys instead of BullMQ ids. */
function byKey(children: Record<string, unknown>, keys: Record<string, string>): Record<string, unknown> {
  const parents: Record<string, unknown> = {};
  for (const [jobId, key] of Object.entries(keys)) if (jobId in children) parents[key] = children[jobId];
  return parents;
}

/**
 * BullMQ doubles an exponential backoff by its own attempt count, which starts again when the
 * reconciler re-adds a job Redis lost: this attempt's copy of the options (the stored ones are not
 * touched) backs off by the run's count instead, so the backoff goes on growing where it was.
 */
function carryExponentialBackoff(job: Job, carried: number) {
  const backoff = job.opts.backoff;
  if (typeof backoff !== "object" || backoff.type !== "exponential") return;
  job.opts = { ...job.opts, backoff: { type: "fixed", delay: Math.round(2 ** (carried + job.attemptsMade) * (backoff.delay ?? 0)) } };
}

/**
 * The job's expireAfterMs when it is starting for the first time after that long: ready when added
 * (graph jobs are added when their dependencies are done), or when its delay ended. A job with
 * children became ready when its last child finished, which Redis does not record; the sweep,
 * reading Postgres's ready time, handles those.
 */
function expiredAtStart(job: Job, meta: JobMeta): number | null {
  const ms = (job.opts as { expireAfterMs?: number }).expireAfterMs;
  if (!ms || meta.parent || job.attemptsMade > 0 || job.attemptsStarted > 1 || meta.attemptsCarried || meta.resumesParked) return null;
  const readyMs = job.timestamp + (job.opts.delay ?? 0);
  return Date.now() - readyMs > ms ? ms : null;
}

/** A retried job runs under `<id>-<n>`; flowd's own id is the part before. */
function identity(job: Job, flowId: string | undefined): JobIdentity {
  const jobId = job.id ?? "";
  return { id: jobId.replace(/-\d+$/, ""), jobId, ...(flowId ? { flowId } : {}), name: job.name, queue: job.queueName };
}

function reporters(job: Job, rowId: string, sink: JobLogSink | undefined) {
  let lines = 0;
  return {
    log(line: string) {
      const text = String(line).slice(0, MAX_LINE_CHARS);
      sink?.add(rowId, text);
      if (++lines > MAX_BULL_LOG_LINES) return;
      job.log(text).catch(() => {});
    },
    progress: (value: number | Record<string, unknown>) => job.updateProgress(value as number | object),
  };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return String(value);
  }
}
