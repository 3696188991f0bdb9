import { and, eq, inArray, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flowJobs, flows } from "../schema";
import type { JobOpts } from "../../job-opts";
import type { NewFlowJobRow } from "./flows";
import { FINISHED_STATUSES, sqlLiterals } from "../../statuses";

/** What a spawn needs to know of a job already in the flow. */
export interface FlowKeyRow {
  id: string;
  jobId: string;
  key: string | null;
  status: string;
  opts: JobOpts;
  depth: number;
  spawnedBy: string | null;
}

/** The job a spawn or a join is asked for, with what decides whether it may add jobs to its flow. */
export interface SpawnerRow {
  id: string;
  jobId: string;
  userId: string;
  flowId: string;
  queueName: string;
  shard: number | null;
  status: string;
  waitingFor: string | null;
  waitsOn: string[] | null;
  graph: boolean;
  flowStatus: string;
}

const spawnerColumns = {
  id: flowJobs.id,
  jobId: flowJobs.jobId,
  userId: flowJobs.userId,
  flowId: flowJobs.flowId,
  queueName: flowJobs.queueName,
  shard: flowJobs.shard,
  status: flowJobs.status,
  waitingFor: flowJobs.waitingFor,
  waitsOn: flowJobs.waitsOn,
  graph: flows.graph,
  flowStatus: flows.status,
};

/** A flow job by its BullMQ id or its row id (they differ after a retry), with its flow's form. */
export async function findSpawner(db: DbOrTx, id: string): Promise<SpawnerRow | undefined> {
  const [row] = await db
    .select(spawnerColumns)
    .from(flowJobs)
    .innerJoin(flows, eq(flows.id, flowJobs.flowId))
    .where(or(eq(flowJobs.jobId, id), eq(flowJobs.id, id)))
    .limit(2);
  return row;
}

/** Serialises spawns into one flow: each counts and checks keys against what the one before wrote. */
export async function lockFlowForSpawn(db: DbOrTx, flowId: string): Promise<{ status: string; jobCount: number } | undefined> {
  const [row] = await db.select({ status: flows.status, jobCount: flows.jobCount }).from(flows).where(eq(flows.id, flowId)).for("update");
  return row;
}

export async function flowKeyRows(db: DbOrTx, flowId: string): Promise<FlowKeyRow[]> {
  return db
    .select({ id: flowJobs.id, jobId: flowJobs.jobId, key: flowJobs.key, status: flowJobs.status, opts: flowJobs.opts, depth: flowJobs.depth, spawnedBy: flowJobs.spawnedBy })
    .from(flowJobs)
    .where(eq(flowJobs.flowId, flowId));
}

/** Writes spawned rows (the insert trigger logs each as a job.updated event) and counts them on the flow. */
export async function insertSpawned(db: DbOrTx, flowId: string, rows: NewFlowJobRow[]) {
  await db.insert(flowJobs).values(rows);
  await db.execute(sql`update flows set job_count = job_count + ${rows.length}, updated_at = now() where id = ${flowId}`);
}

export interface JoinRow {
  id: string;
  key: string | null;
  status: string;
  result: unknown;
  error: unknown;
}

/** A flow's jobs by key. */
export async function jobsByKey(db: DbOrTx, flowId: string, keys: string[]): Promise<JoinRow[]> {
  if (keys.length === 0) return [];
  return db
    .select({ id: flowJobs.id, key: flowJobs.key, status: flowJobs.status, result: flowJobs.result, error: flowJobs.error })
    .from(flowJobs)
    .where(and(eq(flowJobs.flowId, flowId), inArray(flowJobs.key, keys)));
}

export async function jobsById(db: DbOrTx, ids: string[]): Promise<JoinRow[]> {
  if (ids.length === 0) return [];
  return db
    .select({ id: flowJobs.id, key: flowJobs.key, status: flowJobs.status, result: flowJobs.result, error: flowJobs.error })
    .from(flowJobs)
    .where(inArray(flowJobs.id, ids));
}

/**
 * Parks a running job on a join: it waits for `waitIds` (`waiting_for` = `children`), and its row
 * stays `active` (parked_until set, as for a parked http task) while BullMQ holds it as delayed, so
 * the recorder leaves it alone until it finishes. `attempt`: this attempt's number in the run (its
 * count is written now, as the recorder will skip the `active` of its wake-ups). False if the job
 * ended meanwhile (cancelled).
 */
export async function parkForJoin(db: DbOrTx, a: { id: string; waitIds: string[]; until: Date; attempt: number }): Promise<boolean> {
  const rows = await db.execute(sql`
    update flow_jobs set waiting_for = 'children', waits_on = ${JSON.stringify(a.waitIds)}::jsonb, parked_until = ${a.until.toISOString()}::timestamptz,
      status = 'active', attempts_made = attempts_base + ${a.attempt}::int + 1, started_at = coalesce(started_at, now()), updated_at = now()
    where id = ${a.id} and status not in (${sql.raw(sqlLiterals(FINISHED_STATUSES))})
    returning 1`);
  return rows.length > 0;
}

/** The join is over (what it waited for ended): the job runs on, still parked for the recorder until it finishes. */
export async function endJoinWait(db: DbOrTx, id: string) {
  await db.execute(sql`update flow_jobs set waiting_for = null, updated_at = now() where id = ${id} and waiting_for = 'children'`);
}

/** A woken job's attempt failed: no longer parked, so the recorder records its retry or failure. */
export async function unparkJoined(db: DbOrTx, id: string) {
  await db.execute(sql`update flow_jobs set parked_until = null, waiting_for = null, updated_at = now() where id = ${id} and waits_on is not null`);
}

/**
 * Jobs parked on a join whose awaited jobs have all ended, but that no batch woke (the recorder's
 * snapshot missed a park made as the last of them ended), untouched for `olderThanMs`: their wait is
 * ended now (a compare-and-set) and they are returned to be promoted in Redis.
 */
export async function wakeStaleJoins(db: DbOrTx, olderThanMs: number, limit: number): Promise<{ id: string; jobId: string; queueName: string; shard: number | null }[]> {
  const rows = await db.execute<{ id: string; job_id: string; queue_name: string; shard: number | null }>(staleJoinsSql(olderThanMs, limit));
  return rows.map((r) => ({ id: r.id, jobId: r.job_id, queueName: r.queue_name, shard: r.shard }));
}

/** wakeStaleJoins' statement: it runs every second, through flow_jobs_joins_idx (test/db/scan-plans.test.ts). */
export const staleJoinsSql = (olderThanMs: number, limit: number) => sql`
    update flow_jobs w set waiting_for = null, updated_at = now()
    where w.id in (
      select h.id from flow_jobs h
      where h.waiting_for = 'children' and h.status = 'active' and h.updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
        and not exists (select 1 from jsonb_array_elements_text(h.waits_on) as dep(id)
                        join flow_jobs p on p.id = dep.id where p.status not in (${sql.raw(sqlLiterals(FINISHED_STATUSES))}))
      limit ${limit})
      and w.waiting_for = 'children'
    returning w.id, w.job_id, w.queue_name, w.shard`;
