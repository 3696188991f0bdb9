import {
  findJob,
  findJobByIdempotencyKey,
  insertJob,
  listJobs,
  lockJob,
  resetJobForRetry,
  setJobStatus,
  type JobRow,
} from "../db/queries/jobs";
import { Conflict, NotFound } from "../errors";
import { freshJobState } from "../db/schema/columns";
import { newId } from "../ids";
import type { ServiceDeps, User } from "./deps";
import { keysetPage } from "./cursor";
import { ADD_TIMEOUT_MS, removeFromRedis } from "./enqueue";
import { withTimeout } from "../timeout";
import { checkJob } from "./flow-spec";
import type { JobOpts } from "../job-opts";
import { bullOptions, initialStatus } from "./flow-redis";
import type { JobEnvelope } from "./job-envelope";
import { assertSameRequest, firstReply, isUniqueViolation, rememberReply, requestHash } from "./idempotency";
import { jobView, type JobView } from "./flow-views";
import { isFinished } from "../statuses";

/** The queue single jobs and schedule ticks run in. */
export const JOBS_QUEUE = "jobs";


export interface SingleJobView extends JobView {
  scheduleId: string | null;
}

export const singleJobView = (r: JobRow): SingleJobView => ({ ...jobView(r), scheduleId: r.scheduleId });

export interface JobInput {
  name: string;
  data?: Record<string, unknown>;
  opts?: JobOpts;
}

/** A new single-job row, `pending` until its job is in Redis. */
export function newJobRow(userId: string, input: JobInput, extra: Partial<JobRow> = {}): JobRow {
  const id = extra.id ?? newId();
  const now = new Date();
  return {
    id,
    jobId: id,
    userId,
    name: input.name,
    queueName: JOBS_QUEUE,
    data: input.data ?? {},
    opts: (input.opts ?? {}) as Record<string, unknown>,
    ...freshJobState(now),
    scheduleId: null,
    generation: 0,
    idempotencyKey: null,
    requestHash: null,
    ...extra,
  };
}

/** Adds a job row's job to Redis; false (and the row stays `pending` for the enqueuer) if Redis refused. */
export async function enqueueJob(deps: Pick<ServiceDeps, "producer" | "log">, row: JobRow): Promise<boolean> {
  // A plain add: a job without parent or children needs none of the flow machinery.
  const data: JobEnvelope = { data: row.data };
  if (row.attemptsMade > 0) data.attemptsBefore = row.attemptsMade;
  const add = deps.producer.queue(row.queueName).add(row.name, data, bullOptions(row.opts as JobOpts, row.jobId, false));
  return withTimeout(add, ADD_TIMEOUT_MS, "adding a job").then(
    () => true,
    (err) => {
      deps.log.warn("job accepted but not yet in Redis; the enqueuer will add it", { jobId: row.id, err: String(err) });
      return false;
    },
  );
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
  checkJob(body, "");
  const row = newJobRow(user.userId, body, idempotencyKey ? { idempotencyKey, requestHash: hash } : {});
  try {
    await insertJob(deps.db, row);
  } catch (err) {
    const raced = isUniqueViolation(err) ? await replay() : undefined;
    if (raced) return raced;
    throw err;
  }
  if (await enqueueJob(deps, row)) row.status = initialStatus(row, false);
  const view = singleJobView(row);
  if (idempotencyKey) await rememberReply(deps, row.id, view);
  return { job: view, replayed: false };
}

export async function getJob(deps: ServiceDeps, user: User, id: string, waitSeconds = 0): Promise<SingleJobView> {
  let row = await findJob(deps.db, user.userId, id);
  if (!row) throw new NotFound("job", id);
  const deadline = Date.now() + waitSeconds * 1000;
  while (!isFinished(row.status) && Date.now() < deadline) {
    await deps.waiters.wait(id, deadline - Date.now());
    row = (await findJob(deps.db, user.userId, id)) ?? row;
  }
  return singleJobView(row);
}

export function listUserJobs(
  deps: ServiceDeps,
  user: User,
  q: { status?: string; name?: string; scheduleId?: string; limit?: number; cursor?: string },
) {
  return keysetPage(q, (limit, before) => listJobs(deps.db, user.userId, { ...q, limit, before }), singleJobView);
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
  await enqueueJob(deps, row);
  return getJob(deps, user, id);
}
