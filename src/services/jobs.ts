import {
  findJob,
  findJobByIdempotencyKey,
  insertJobs,
  markJobsUnqueued,
  listJobs,
  lockJob,
  resetJobForRetry,
  deleteJobRow,
  setJobStatus,
  type JobRow,
} from "../db/queries/jobs";
import { Conflict, InvalidInput, NotFound } from "../errors";
import { deleteReply, findReply, replaceReply, saveReply } from "../db/queries/replies";
import { freshJobState } from "../db/schema/columns";
import { currentTraceparent } from "../telemetry";
import { newId } from "../ids";
import type { ServiceDeps, User } from "./deps";
import type { Producer } from "../queues";
import { keysetPage } from "./cursor";
import { parseDataFilter, timeRange } from "./search";
import { withReports } from "./job-report-views";
import { removeFromRedis } from "./enqueue";
import { checkJob, refuseDebounce, singleJobQueue } from "./flow-spec";
import type { WaitingFor, WaitingReason } from "../scheduling/waiting-for";
import { enqueueJobs } from "./enqueue-jobs";

export { enqueueJobs };
import type { JobOpts } from "../job-opts";
import { limitFields } from "../scheduling/limits";
import { addLimitReleased, ensureKeysWithin, releaseAndAdd, releaseWithin, ringSweepers } from "../scheduling/limit-release";
import type { DbOrTx } from "../db/client";
import { initialStatus } from "./flow-redis";
import { assertSameRequest, firstReply, isUniqueViolation, rememberReply, requestHash } from "./idempotency";
import { jobView, type JobView } from "./flow-views";
import { isFinished } from "../statuses";
import { createGroupCommit, type GroupCommit } from "./group-commit";

/** The queue single jobs and schedule ticks run in. */
export const JOBS_QUEUE = "jobs";


export interface SingleJobView extends JobView {
  scheduleId: string | null;
  /** Why a `pending` job is held out of Redis (a debounced job while its window is open). */
  waitingFor?: WaitingFor;
  /** A debounced job: its key, the creates collapsed into it after the first, and when its window ends (or ended). */
  debounce?: { key: string; collapsed: number; until: string };
}

export const singleJobView = (r: JobRow): SingleJobView => ({
  ...jobView(r),
  scheduleId: r.scheduleId,
  // A per-key limit's hold (with its key) is jobView's; debounce's is told here.
  ...(r.waitingFor && r.status === "pending" && r.waitingFor !== "concurrency" && r.waitingFor !== "rateLimit"
    ? { waitingFor: { reason: r.waitingFor as WaitingReason, ...(r.debounceKey ? { key: r.debounceKey } : {}), ...(r.debounceUntil ? { until: r.debounceUntil.toISOString() } : {}) } }
    : {}),
  ...(r.debounceKey ? { debounce: { key: r.debounceKey, collapsed: r.debounced, until: (r.debounceUntil ?? r.createdAt).toISOString() } } : {}),
});

export interface JobInput {
  name: string;
  /** `jobs` (the default) or an external queue (FLOWD_EXTERNAL_QUEUES). */
  queue?: string;
  data?: Record<string, unknown>;
  opts?: JobOpts;
}

/** A new single-job row, `pending` until its job is in Redis, on the shard `shards` picks from its id (none given: the plain prefix). */
export function newJobRow(userId: string, input: JobInput, extra: Partial<JobRow> = {}, shards?: Pick<Producer, "pick">): JobRow {
  const id = extra.id ?? newId();
  const now = new Date();
  return {
    id,
    jobId: id,
    userId,
    name: input.name,
    queueName: input.queue ?? JOBS_QUEUE,
    shard: shards?.pick(id) ?? null,
    data: input.data ?? {},
    opts: (input.opts ?? {}) as Record<string, unknown>,
    ...freshJobState(now, extra.status ?? "pending"),
    scheduleId: null,
    debounceKey: null,
    debounceUntil: null,
    debounced: 0,
    generation: 0,
    idempotencyKey: null,
    requestHash: null,
    traceparent: currentTraceparent(),
    ...limitFields(input.opts ?? {}),
    ...extra,
  };
}

/** Adds a job row's job to Redis; false (and the row stays `pending` for the enqueuer) if Redis refused. */
export async function enqueueJob(deps: Pick<ServiceDeps, "producer" | "log">, row: JobRow): Promise<boolean> {
  return enqueueJobs(deps, [row]);
}

/**
 * Writes new rows (by default in one insert; `insert` may add to its transaction) and adds their
 * jobs in one round trip, then says where each is: queued in Redis, or `pending` for the enqueuer.
 * Only the write throws; it is all or nothing. Resolves to whether the add reached Redis.
 */
async function storeAndEnqueue(
  deps: ServiceDeps,
  rows: JobRow[],
  insert: (db: DbOrTx, rows: JobRow[]) => Promise<unknown> = insertJobs,
): Promise<boolean> {
  if (rows.some(isLimited)) return storeLimited(deps, rows, insert);
  // Written where the add puts it (the recorder then has nothing to write for `waiting`); back to
  // `pending` if the add fails.
  for (const row of rows) {
    row.status = initialStatus(row, false);
    // Its wait starts now, as for a flow's leaves: the recorder skips BullMQ's `waiting` for it.
    row.readyAt = row.status === "waiting" ? row.createdAt : null;
  }
  await insert(deps.db, rows);
  if (await enqueueJobs(deps, rows)) return true;
  await markPending(deps, rows);
  return false;
}

const isLimited = (row: JobRow) => row.concurrencyKeys !== null || row.rateKey !== null;

/**
 * Writes rows of which some are under per-key limits (src/scheduling/limits.ts): under the user's
 * lock, their keys get settings where they have none, the rows go in held, and a release pass lets
 * go of what the limits allow now (an earlier job of another key may go too). What was let go goes
 * to Redis after the commit; the rest waits, `pending`, for a later pass.
 */
async function storeLimited(deps: ServiceDeps, rows: JobRow[], insert: (db: DbOrTx, rows: JobRow[]) => Promise<unknown>): Promise<boolean> {
  const userId = rows[0]!.userId;
  for (const row of rows) {
    row.status = "pending";
    row.readyAt = null;
  }
  const released = await deps.db.transaction(async (tx) => {
    await ensureKeysWithin(tx, userId, rows.map((r) => r.opts));
    await insert(tx, rows);
    return releaseWithin(tx, userId);
  });
  const freed = new Set(released.jobs);
  for (const row of rows)
    if (freed.has(row.id)) {
      // As the pass wrote it: where the add puts it (see writePass).
      row.waitingFor = null;
      row.status = initialStatus(row, false);
      row.readyAt = row.status === "waiting" ? new Date() : null;
    }
  const own = new Set(rows.map((r) => r.id));
  const others = { jobs: released.jobs.filter((id) => !own.has(id)), jobRows: released.jobRows.filter((r) => !own.has(r.id)), flowJobs: released.flowJobs };
  if (others.jobs.length + others.flowJobs.length > 0)
    await addLimitReleased(deps, others).catch((err) => deps.log.warn("released jobs not yet in Redis; the enqueuer will add them", { err: String(err) }));
  await ringSweepers(deps, deps.config.prefix, released);
  const going = rows.filter((r) => !r.waitingFor);
  if (going.length === 0 || (await enqueueJobs(deps, going))) return true;
  await markPending(deps, going);
  return false;
}

/**
 * A pass for the user's held jobs (a retried limited job waits its turn again, a schedule's tick
 * its turn, a cancel frees a slot), then what it let go into Redis. `rows`: held rows written
 * outside storeLimited, whose keys get their settings first.
 */
export async function releaseLimited(deps: Pick<ServiceDeps, "db" | "producer" | "log" | "config">, userId: string, rows: JobRow[] = []) {
  await releaseAndAdd(deps, userId, rows.map((r) => r.opts));
}

/**
 * The add failed (Redis down, too slow): the rows go back to `pending`, where the enqueuer finds
 * them. If even that write fails, the reconciler finds them queued in Postgres and gone from Redis.
 */
async function markPending(deps: ServiceDeps, rows: JobRow[]) {
  for (const row of rows) row.status = "pending";
  await markJobsUnqueued(deps.db, rows.map((r) => r.id)).catch((err) =>
    deps.log.warn("could not mark unqueued jobs pending; the reconciler will add them", { count: rows.length, err: String(err) }),
  );
}

/**
 * Concurrent unkeyed creates of one API process share an insert and an add (services/group-commit.ts).
 * One write at a time: arrivals during it share the next, so batches grow with load (16 clients:
 * 5.3 jobs a write instead of 3.4 with two at a time) and the API spends a fifth less CPU per create
 * at the same rate, since a write's round trips, not its rows, are most of its cost.
 */
const groupCommits = new WeakMap<ServiceDeps, GroupCommit<JobRow, JobRow>>();
function groupCommitOf(deps: ServiceDeps): GroupCommit<JobRow, JobRow> {
  let gc = groupCommits.get(deps);
  if (!gc) {
    gc = createGroupCommit<JobRow, JobRow>((rows) => storeOneByOneOnError(deps, rows), { slots: 1, maxBatch: 100 });
    groupCommits.set(deps, gc);
  }
  return gc;
}

/** A shared insert that fails is tried again row by row, so one request's failure stays its own. */
async function storeOneByOneOnError(deps: ServiceDeps, rows: JobRow[]): Promise<JobRow[]> {
  if (rows.length === 1) return (await storeAndEnqueue(deps, rows), rows);
  try {
    await storeAndEnqueue(deps, rows);
    return rows;
  } catch {
    const each = await Promise.allSettled(rows.map((row) => storeAndEnqueue(deps, [row])));
    const failed = each.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return rows;
  }
}

/** The same path as a flow of one: row first, then Redis under the row's id; Idempotency-Key replays. */
export async function createJob(deps: ServiceDeps, user: User, body: JobInput, idempotencyKey?: string) {
  const hash = idempotencyKey ? requestHash(body) : "";
  const replay = async () => {
    const existing = idempotencyKey ? await findJobByIdempotencyKey(deps.db, user.userId, idempotencyKey) : undefined;
    if (!existing) return undefined;
    assertSameRequest(existing.requestHash, hash, existing.id);
    return { job: await firstReply(deps.db, existing.id, () => singleJobView(existing)), replayed: true };
  };
  const first = await replay();
  if (first) return first;
  const opts = checkJob(body, "", deps.registry, singleJobQueue(deps.config, body.queue, ""));
  const row = newJobRow(user.userId, { ...body, opts }, idempotencyKey ? { idempotencyKey, requestHash: hash } : {}, deps.producer);
  // A limited job's create runs a release pass under its user's lock: never shared with other users' rows.
  if (!idempotencyKey && !isLimited(row)) return { job: singleJobView(await groupCommitOf(deps).submit(row)), replayed: false };
  if (!idempotencyKey) return (await storeAndEnqueue(deps, [row]), { job: singleJobView(row), replayed: false });
  try {
    await storeAndEnqueue(deps, [row]);
  } catch (err) {
    const raced = isUniqueViolation(err) ? await replay() : undefined;
    if (raced) return raced;
    throw err;
  }
  const view = singleJobView(row);
  await rememberReply(deps, row.id, view);
  return { job: view, replayed: false };
}

/** The most jobs one `POST /v1/jobs/bulk` takes. */
export const MAX_BULK_JOBS = 1_000;

/**
 * Many single jobs at once, all or nothing: every job is checked before anything is written (the
 * first bad one refuses the request, naming its index), then one insert and one `addBulk`. With an
 * Idempotency-Key, the first row carries the key and the answer is stored in the same transaction
 * as the rows, so a repeat always gets the first answer back.
 */
export async function createJobs(deps: ServiceDeps, user: User, body: { jobs: JobInput[] }, idempotencyKey?: string) {
  const hash = idempotencyKey ? requestHash(body) : "";
  const replay = async () => {
    const existing = idempotencyKey ? await findJobByIdempotencyKey(deps.db, user.userId, idempotencyKey) : undefined;
    if (!existing) return undefined;
    assertSameRequest(existing.requestHash, hash, existing.id);
    const reply = await findReply<{ items: SingleJobView[] }>(deps.db, existing.id);
    return { page: reply ?? { items: [singleJobView(existing)] }, replayed: true };
  };
  const first = await replay();
  if (first) return first;
  const checked = body.jobs.map((job, i): JobInput => {
    try {
      refuseDebounce(job.opts, `/jobs/${i}`, "a bulk create");
      return { ...job, opts: checkJob(job, `/jobs/${i}`, deps.registry, singleJobQueue(deps.config, job.queue, `/jobs/${i}`)) };
    } catch (err) {
      if (err instanceof InvalidInput) throw new InvalidInput(`Job ${i}: ${err.message}`, err.details, err.code);
      throw err;
    }
  });
  const rows = checked.map((job, i) => newJobRow(user.userId, job, i === 0 && idempotencyKey ? { idempotencyKey, requestHash: hash } : {}, deps.producer));
  const page = () => ({ items: rows.map(singleJobView) });
  if (!idempotencyKey) {
    await storeAndEnqueue(deps, rows);
    return { page: page(), replayed: false };
  }
  let queued: boolean;
  try {
    queued = await storeAndEnqueue(deps, rows, (db, r) =>
      db.transaction(async (tx) => {
        await insertJobs(tx, r);
        await saveReply(tx, r[0]!.id, page());
      }),
    );
  } catch (err) {
    const raced = isUniqueViolation(err) ? await replay() : undefined;
    if (raced) return raced;
    throw err;
  }
  // The stored answer said where the add would put the jobs; it did not get them there.
  if (!queued)
    await replaceReply(deps.db, rows[0]!.id, page()).catch((err) =>
      deps.log.warn("could not store the final answer for Idempotency-Key repeats", { jobId: rows[0]!.id, err: String(err) }),
    );
  return { page: page(), replayed: false };
}

export async function getJob(deps: ServiceDeps, user: User, id: string, waitSeconds = 0): Promise<SingleJobView> {
  const row = await deps.waiters.until(id, waitSeconds, () => findJob(deps.db, user.userId, id), (r) => isFinished(r.status));
  if (!row) throw new NotFound("job", id);
  return withReports(deps.db, singleJobView(row));
}

export function listUserJobs(
  deps: ServiceDeps,
  user: User,
  q: { status?: string; name?: string; data?: string; scheduleId?: string; since?: string; until?: string; limit?: number; cursor?: string },
) {
  const filters = { status: q.status, name: q.name, scheduleId: q.scheduleId, data: parseDataFilter(q.data), ...timeRange(q) };
  return keysetPage(q, (limit, before) => listJobs(deps.db, user.userId, { ...filters, limit, before }), singleJobView);
}

export async function cancelJob(deps: ServiceDeps, user: User, id: string): Promise<SingleJobView> {
  const row = await deps.db.transaction(async (tx) => {
    const job = await lockJob(tx, user.userId, id);
    if (!job) throw new NotFound("job", id);
    if (isFinished(job.status))
      throw new Conflict("job_finished", `The job already finished as '${job.status}'; only an unfinished job can be cancelled.`);
    await setJobStatus(tx, id, "cancelled");
    return job;
  });
  await deps.broadcastCancel([row.jobId]).catch((err) => deps.log.warn("could not broadcast cancel", { jobId: id, err: String(err) }));
  await removeFromRedis(deps, [row]);
  // Its slot is free now: the key's next job need not wait for the sweeper.
  if (row.concurrencyKeys) await releaseLimited(deps, user.userId);
  return getJob(deps, user, id);
}

/** A failed job runs again under a new BullMQ id; `fail`'s `times` keeps counting across runs. */
export async function retryJob(deps: ServiceDeps, user: User, id: string): Promise<SingleJobView> {
  const { previous, row } = await deps.db.transaction(async (tx) => {
    const job = await lockJob(tx, user.userId, id);
    if (!job) throw new NotFound("job", id);
    if (!isFinished(job.status)) throw new Conflict("job_running", "The job has not finished; retry it once it has failed.");
    if (job.status !== "failed")
      throw new Conflict("nothing_to_retry", `The job finished as '${job.status}'; only a failed job can be retried.`);
    return { previous: job, row: await resetJobForRetry(tx, id) };
  });
  await removeFromRedis(deps, [previous]);
  if (row.waitingFor) await releaseLimited(deps, user.userId);
  else await enqueueJob(deps, row);
  return getJob(deps, user, id);
}

/**
 * Deletes a finished single job: its row (its events stay in the log) and whatever of it Redis
 * still holds. 409 `job_running` while it has not finished: cancel it first.
 */
export async function deleteJob(deps: ServiceDeps, user: User, id: string): Promise<void> {
  const row = await deps.db.transaction(async (tx) => {
    const job = await lockJob(tx, user.userId, id);
    if (!job) throw new NotFound("job", id);
    if (!isFinished(job.status)) throw new Conflict("job_running", "The job has not finished; cancel it or wait for it to finish before deleting it.");
    await deleteJobRow(tx, id);
    await deleteReply(tx, id);
    return job;
  });
  await removeFromRedis(deps, [row]);
}
