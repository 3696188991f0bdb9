import { and, eq, gte, inArray, isNull, lt, sql, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { jobs } from "../schema";
import { isPending, isQueued } from "../schema/columns";
import { untouchedFor } from "./conditions";
import { namePrefix } from "./search";
import { newestFirst, olderThan } from "./pagination";
import { isId } from "../../ids";
import { preparedPerDb } from "./prepared";

export type JobRow = typeof jobs.$inferSelect;
export type NewJobRow = typeof jobs.$inferInsert;

// Every column a new row carries, as placeholders: the insert is prepared once (see prepared.ts).
const JOB_COLUMNS = [
  "id", "jobId", "userId", "name", "queueName", "shard", "data", "opts", "status", "result", "error", "attemptsMade",
  "attemptsBase", "eventPos", "createdAt", "updatedAt", "scheduleId", "generation", "idempotencyKey", "requestHash", "traceparent",
  "waitingFor", "rateKey",
] as const satisfies readonly (keyof JobRow)[];

const insertJobQuery = preparedPerDb((db) =>
  db
    .insert(jobs)
    .values({
      ...(Object.fromEntries(JOB_COLUMNS.map((c) => [c, sql.placeholder(c)])) as unknown as NewJobRow),
      // Raw, since drizzle's timestamp mapping cannot take a null placeholder; a new row has not started yet.
      readyAt: sql`${sql.placeholder("readyAt")}::timestamptz`,
      concurrencyKeys: sql`${sql.placeholder("concurrencyKeys")}::text[]`,
    })
    .prepare("flowd_insert_job"),
);

export async function insertJob(db: DbOrTx, row: JobRow) {
  // As text, as drizzle sends its own timestamps: the driver serialises a described timestamptz parameter from a string only.
  await insertJobQuery(db).execute({ ...row, readyAt: row.readyAt?.toISOString() ?? null });
}

/**
 * Rows written at their queued status whose add failed go back to `pending` for the enqueuer; a row
 * BullMQ already moved on (an add that reached Redis after all) is left as the recorder wrote it.
 */
export async function markJobsUnqueued(db: DbOrTx, ids: string[]) {
  await db
    .update(jobs)
    .set({ status: "pending", updatedAt: sql`now()` })
    .where(and(inArray(jobs.id, ids), eq(jobs.eventPos, 0), isQueued(jobs.status)));
}

/** Several single jobs in one statement (one commit): all of them or, on any error, none. */
export async function insertJobs(db: DbOrTx, rows: JobRow[]) {
  if (rows.length === 1) return insertJob(db, rows[0]!);
  // One JSON parameter for the batch: drizzle's values() escaped every column of every row, a
  // sixth of the API's CPU on concurrent single creates (group commit) and bulks.
  const batch = rows.map((r) => ({
    id: r.id, job_id: r.jobId, user_id: r.userId, name: r.name, queue_name: r.queueName, shard: r.shard, data: r.data, opts: r.opts,
    status: r.status, attempts_made: r.attemptsMade, attempts_base: r.attemptsBase, created_at: r.createdAt.toISOString(),
    schedule_id: r.scheduleId, generation: r.generation, idempotency_key: r.idempotencyKey, request_hash: r.requestHash,
    traceparent: r.traceparent, ready_at: r.readyAt?.toISOString() ?? null,
    waiting_for: r.waitingFor, concurrency_keys: r.concurrencyKeys, rate_key: r.rateKey,
  }));
  await db.execute(sql`
    insert into jobs (id, job_id, user_id, name, queue_name, shard, data, opts, status, attempts_made, attempts_base,
                      created_at, updated_at, schedule_id, generation, idempotency_key, request_hash, traceparent, ready_at,
                      waiting_for, concurrency_keys, rate_key)
    select r.id, r.job_id, r.user_id, r.name, r.queue_name, r.shard, r.data, r.opts, r.status, r.attempts_made, r.attempts_base,
           r.created_at, r.created_at, r.schedule_id, r.generation, r.idempotency_key, r.request_hash, r.traceparent, r.ready_at,
           r.waiting_for, r.concurrency_keys, r.rate_key
    from jsonb_to_recordset(${JSON.stringify(batch)}::jsonb) as r(id text, job_id text, user_id text, name text, queue_name text,
      shard smallint, data jsonb, opts jsonb, status text, attempts_made int, attempts_base int, created_at timestamptz,
      schedule_id text, generation int, idempotency_key text, request_hash text, traceparent text, ready_at timestamptz,
      waiting_for text, concurrency_keys text[], rate_key text)`);
}

/** A schedule tick's job: its id is derived from the tick, so a second insert of the same tick does nothing. */
export async function insertJobOnce(db: DbOrTx, row: NewJobRow): Promise<boolean> {
  const inserted = await db.insert(jobs).values(row).onConflictDoNothing({ target: jobs.id }).returning({ id: jobs.id });
  return inserted.length > 0;
}

const jobById = preparedPerDb((db) =>
  db
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, sql.placeholder("id")), eq(jobs.userId, sql.placeholder("userId"))))
    .limit(1)
    .prepare("flowd_job_by_id"),
);

const jobByIdempotencyKey = preparedPerDb((db) =>
  db
    .select()
    .from(jobs)
    .where(and(eq(jobs.userId, sql.placeholder("userId")), eq(jobs.idempotencyKey, sql.placeholder("key"))))
    .limit(1)
    .prepare("flowd_job_by_idempotency_key"),
);

export async function findJob(db: DbOrTx, userId: string, id: string): Promise<JobRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await jobById(db).execute({ id, userId });
  return row;
}

export async function findJobById(db: DbOrTx, id: string): Promise<JobRow | undefined> {
  const [row] = await db.select().from(jobs).where(eq(jobs.id, id)).limit(1);
  return row;
}

export async function lockJob(db: DbOrTx, userId: string, id: string): Promise<JobRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db.select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.userId, userId))).for("update").limit(1);
  return row;
}

export async function findJobByIdempotencyKey(db: DbOrTx, userId: string, key: string) {
  const [row] = await jobByIdempotencyKey(db).execute({ userId, key });
  return row;
}

/** What picks single jobs out: the list route's filters and a bulk action's (a time range on created_at, explicit ids). */
export type JobMatch = {
  status?: string;
  name?: string;
  data?: Record<string, unknown>;
  scheduleId?: string;
  since?: Date;
  until?: Date;
  ids?: string[];
};

export type JobListFilter = JobMatch & {
  limit: number;
  before?: { createdAt: Date; id: string };
};

export async function listJobs(db: DbOrTx, userId: string, q: JobListFilter) {
  return listJobsQuery(db, userId, q);
}

/** A user's single jobs that `q` picks, as conditions on `jobs`. */
export function jobConditions(userId: string, q: JobMatch): SQL[] {
  const conditions = [eq(jobs.userId, userId)];
  if (q.status) conditions.push(eq(jobs.status, q.status));
  if (q.name) conditions.push(namePrefix(jobs.name, q.name));
  if (q.data) conditions.push(sql`${jobs.data} @> ${JSON.stringify(q.data)}::jsonb`);
  if (q.scheduleId) conditions.push(eq(jobs.scheduleId, q.scheduleId));
  if (q.since) conditions.push(gte(jobs.createdAt, q.since));
  if (q.until) conditions.push(lt(jobs.createdAt, q.until));
  if (q.ids) conditions.push(inArray(jobs.id, q.ids));
  return conditions;
}

/** The query behind `listJobs`, for a test to check its plan. */
export function listJobsQuery(db: DbOrTx, userId: string, q: JobListFilter) {
  const conditions = jobConditions(userId, q);
  if (q.before) conditions.push(olderThan(jobs.createdAt, jobs.id, q.before));
  return db.select().from(jobs).where(and(...conditions)).orderBy(...newestFirst(jobs.createdAt, jobs.id)).limit(q.limit);
}

/** Deletes a single job's row (its events stay in the log). */
export async function deleteJobRow(db: DbOrTx, id: string) {
  await db.delete(jobs).where(eq(jobs.id, id));
}

export async function setJobStatus(db: DbOrTx, id: string, status: string) {
  await db.update(jobs).set({ status, updatedAt: sql`now()` }).where(eq(jobs.id, id));
}

/** Puts a failed job back to `pending` under a new BullMQ id; attempts so far become the base. */
export async function resetJobForRetry(db: DbOrTx, id: string): Promise<JobRow> {
  const [row] = await db
    .update(jobs)
    .set({
      generation: sql`${jobs.generation} + 1`,
      jobId: sql`${jobs.id} || '-' || (${jobs.generation} + 1)`,
      status: "pending",
      result: null,
      error: null,
      attemptsBase: sql`${jobs.attemptsMade}`,
      eventPos: 0,
      updatedAt: sql`now()`,
      readyAt: null,
      startedAt: null,
      finishedAt: null,
      // Not parked under its new id (see resetForRetry in flows.ts).
      parkedUntil: null,
      // Under per-key limits the new run waits its turn like a new job (src/scheduling/limits.ts).
      waitingFor: sql`case when ${jobs.concurrencyKeys} is not null then 'concurrency' when ${jobs.rateKey} is not null then 'rateLimit' end`,
    })
    .where(eq(jobs.id, id))
    .returning();
  return row!;
}

/** Jobs accepted but not yet in Redis for `olderThanMs`, and not held (a debounced job's window). */
export async function pendingJobs(db: DbOrTx, olderThanMs: number, limit: number): Promise<JobRow[]> {
  return pendingJobsQuery(db, olderThanMs, limit);
}

/** The query behind `pendingJobs`, for a test to check its plan. */
export const pendingJobsQuery = (db: DbOrTx, olderThanMs: number, limit: number) =>
  // Held for a per-key limit (waiting_for): a release pass lets it go, not the enqueuer.
  db.select().from(jobs).where(and(isPending(jobs.status), isNull(jobs.waitingFor), untouchedFor(jobs.updatedAt, olderThanMs))).limit(limit);

/** Single jobs Postgres believes are in Redis (queued or running), untouched for `olderThanMs`. */
export async function queuedJobs(db: DbOrTx, olderThanMs: number, limit: number): Promise<JobRow[]> {
  return queuedJobsQuery(db, olderThanMs, limit);
}

/** The query behind `queuedJobs`, for a test to check its plan. */
export const queuedJobsQuery = (db: DbOrTx, olderThanMs: number, limit: number) =>
  db
    .select()
    .from(jobs)
    .where(and(isQueued(jobs.status), untouchedFor(jobs.updatedAt, olderThanMs)))
    .limit(limit);
