import { and, asc, desc, eq, inArray, lt, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flowJobs, flows } from "../schema";

export type FlowRow = typeof flows.$inferSelect;
export type FlowJobRow = typeof flowJobs.$inferSelect;
export type NewFlowJobRow = typeof flowJobs.$inferInsert;

export const FINISHED_JOB = ["completed", "failed", "cancelled"] as const;

export async function insertFlow(db: DbOrTx, flow: typeof flows.$inferInsert, jobs: NewFlowJobRow[]) {
  await db.insert(flows).values(flow);
  // One statement per few thousand rows keeps the parameter count under Postgres' 65,535 limit.
  for (let i = 0; i < jobs.length; i += 2000) await db.insert(flowJobs).values(jobs.slice(i, i + 2000));
}

export async function findFlow(db: DbOrTx, userId: string, id: string): Promise<FlowRow | undefined> {
  const [row] = await db.select().from(flows).where(and(eq(flows.id, id), eq(flows.userId, userId))).limit(1);
  return row;
}

export async function lockFlow(db: DbOrTx, userId: string, id: string): Promise<FlowRow | undefined> {
  const [row] = await db.select().from(flows).where(and(eq(flows.id, id), eq(flows.userId, userId))).for("update").limit(1);
  return row;
}

export async function findFlowByIdempotencyKey(db: DbOrTx, userId: string, key: string) {
  const [row] = await db
    .select()
    .from(flows)
    .where(and(eq(flows.userId, userId), eq(flows.idempotencyKey, key)))
    .limit(1);
  return row;
}

export async function flowJobsOf(db: DbOrTx, flowId: string): Promise<FlowJobRow[]> {
  return db.select().from(flowJobs).where(eq(flowJobs.flowId, flowId)).orderBy(asc(flowJobs.depth), asc(flowJobs.id));
}

/** Newest first, by (created_at, id) so that pages never skip or repeat a flow. */
export async function listFlows(
  db: DbOrTx,
  userId: string,
  q: { status?: string; limit: number; before?: { createdAt: Date; id: string } },
) {
  const conditions = [eq(flows.userId, userId)];
  if (q.status) conditions.push(eq(flows.status, q.status));
  if (q.before)
    conditions.push(
      or(lt(flows.createdAt, q.before.createdAt), and(eq(flows.createdAt, q.before.createdAt), lt(flows.id, q.before.id)))!,
    );
  return db
    .select()
    .from(flows)
    .where(and(...conditions))
    .orderBy(desc(flows.createdAt), desc(flows.id))
    .limit(q.limit);
}

/**
 * Moves rows out of `pending` once their jobs are in Redis. Guarded on `pending`, so a status the
 * recorder already wrote from Redis's own events is never overwritten.
 */
export async function markEnqueued(db: DbOrTx, table: "flow_jobs" | "jobs", statuses: { id: string; status: string }[]) {
  if (statuses.length === 0) return;
  await db.execute(sql`
    update ${sql.identifier(table)} as j set status = v.status, updated_at = now()
    from jsonb_to_recordset(${JSON.stringify(statuses)}::jsonb) as v(id text, status text)
    where j.id = v.id and j.status = 'pending'`);
}

/** Marks every unfinished job of a flow cancelled; returns them as they were, for removal from Redis. */
export async function cancelUnfinished(db: DbOrTx, flowId: string) {
  const rows = await db
    .select({ id: flowJobs.id, jobId: flowJobs.jobId, queueName: flowJobs.queueName, status: flowJobs.status, depth: flowJobs.depth })
    .from(flowJobs)
    .where(and(eq(flowJobs.flowId, flowId), sql`${flowJobs.status} not in ('completed', 'failed', 'cancelled')`))
    .for("update");
  if (rows.length > 0)
    await db
      .update(flowJobs)
      .set({ status: "cancelled", updatedAt: sql`now()` })
      .where(inArray(flowJobs.id, rows.map((r) => r.id)));
  return rows;
}

export async function deleteFlowRow(db: DbOrTx, id: string) {
  await db.delete(flows).where(eq(flows.id, id));
}

/** Puts jobs back to `pending` under new BullMQ ids for a retry; results and errors of the old run are cleared. */
export async function resetForRetry(db: DbOrTx, resets: { id: string; job_id: string }[]) {
  await db.execute(sql`
    update flow_jobs as j set job_id = v.job_id, status = 'pending', result = null, error = null,
      attempts_base = j.attempts_made, event_pos = 0, updated_at = now()
    from jsonb_to_recordset(${JSON.stringify(resets)}::jsonb) as v(id text, job_id text)
    where j.id = v.id`);
}

export async function bumpGeneration(db: DbOrTx, flowId: string): Promise<number> {
  const [row] = await db
    .update(flows)
    .set({ generation: sql`${flows.generation} + 1`, updatedAt: sql`now()` })
    .where(eq(flows.id, flowId))
    .returning({ generation: flows.generation });
  return row!.generation;
}

/** Flows with rows accepted but not yet in Redis for `olderThanMs` (the API's own add normally wins). */
export async function flowsWithPendingJobs(db: DbOrTx, olderThanMs: number, limit: number): Promise<string[]> {
  const rows = await db.execute<{ flow_id: string }>(sql`
    select distinct flow_id from flow_jobs
    where status = 'pending' and updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
    limit ${limit}`);
  return rows.map((r) => r.flow_id);
}
