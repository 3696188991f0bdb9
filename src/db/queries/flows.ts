import { and, asc, eq, gt, gte, inArray, isNull, lt, or, sql, type SQL } from "drizzle-orm";
import { newestFirst, olderThan } from "./pagination";
import type { Db, DbOrTx } from "../client";
import { flowJobs, flows } from "../schema";
import { isPending, isQueued } from "../schema/columns";
import { untouchedFor } from "./conditions";
import { namePrefix } from "./search";
import { isId } from "../../ids";
import { preparedPerDb } from "./prepared";
import { FINISHED_STATUSES, sqlLiterals } from "../../statuses";

export type FlowRow = typeof flows.$inferSelect;
export type FlowJobRow = typeof flowJobs.$inferSelect;
export type NewFlowJobRow = typeof flowJobs.$inferInsert;

/**
 * Writes a flow and all its jobs in one statement (one round trip, one implicit transaction): the
 * jobs travel as a single JSON parameter, which Postgres unpacks far faster than thousands of binds.
 * Fixed text sent through postgres.js as a prepared statement: drizzle would rebuild it on every call, and cannot prepare it.
 */
const INSERT_FLOW = `
  with f as (
    insert into flows (id, user_id, name, status, root_id, job_count, idempotency_key, request_hash, created_at, updated_at, traceparent, graph,
                       definition, definition_version, schedule_id, event_id)
    values ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $8, $10, $12, $13, $14, $15, $16)
    returning id, user_id
  )
  insert into flow_jobs (id, job_id, user_id, flow_id, parent_id, name, queue_name, shard, data, opts, status, children, depth, created_at, updated_at, ready_at,
                         key, depends_on, waiting_for, concurrency_keys, rate_key)
  select r.id, r.job_id, f.user_id, f.id, r.parent_id, r.name, r.queue_name, $11::smallint, r.data, r.opts, r.status, r.children, r.depth, $8, $8, r.ready_at,
         r.key, r.depends_on, r.waiting_for, r.concurrency_keys, r.rate_key
  from f, jsonb_to_recordset($9::jsonb)
    as r(id text, job_id text, parent_id text, name text, queue_name text, data jsonb, opts jsonb, status text, children jsonb, depth int,
         ready_at timestamptz, key text, depends_on jsonb, waiting_for text, concurrency_keys text[], rate_key text)`;

/** A flow's jobs all live on one shard (BullMQ needs a flow in one hash slot): the first row's. */
export async function insertFlow(db: Db, flow: typeof flows.$inferInsert, jobs: NewFlowJobRow[]) {
  await db.$client.unsafe(INSERT_FLOW, insertParams(flow, jobs), { prepare: true });
}

/**
 * Several flows in one transaction, their statements pipelined: one commit (and one doorbell) for
 * all of them. All or none: on any error nothing is written, and the caller writes them one by one.
 */
export async function insertFlows(db: Db, items: { flow: typeof flows.$inferInsert; jobs: NewFlowJobRow[] }[]) {
  if (items.length === 1) return insertFlow(db, items[0]!.flow, items[0]!.jobs);
  await db.$client.begin((tx) => items.map((i) => tx.unsafe(INSERT_FLOW, insertParams(i.flow, i.jobs), { prepare: true })));
}

function insertParams(flow: typeof flows.$inferInsert, jobs: NewFlowJobRow[]) {
  const payload = jobs.map((j) => ({
    id: j.id,
    job_id: j.jobId,
    parent_id: j.parentId ?? null,
    name: j.name,
    queue_name: j.queueName,
    data: j.data,
    opts: j.opts,
    status: j.status ?? "pending",
    children: j.children ?? [],
    depth: j.depth ?? 0,
    ready_at: j.readyAt ?? null,
    key: j.key ?? null,
    depends_on: j.dependsOn ?? null,
    waiting_for: j.waitingFor ?? null,
    concurrency_keys: j.concurrencyKeys ?? null,
    rate_key: j.rateKey ?? null,
  }));
  const at = (flow.createdAt ?? new Date()).toISOString();
  return [
    flow.id,
    flow.userId,
    flow.name,
    flow.rootId ?? null,
    flow.jobCount,
    flow.idempotencyKey ?? null,
    flow.requestHash ?? null,
    at,
    JSON.stringify(payload),
    flow.traceparent ?? null,
    jobs[0]?.shard ?? null,
    flow.graph ?? false,
    flow.definition ?? null,
    flow.definitionVersion ?? null,
    flow.scheduleId ?? null,
    flow.eventId ?? null,
  ];
}

// The reads on every flow request (and every long-poll wake) are prepared: see prepared.ts.
const flowById = preparedPerDb((db) =>
  db
    .select()
    .from(flows)
    .where(and(eq(flows.id, sql.placeholder("id")), eq(flows.userId, sql.placeholder("userId"))))
    .limit(1)
    .prepare("flowd_flow_by_id"),
);

const flowByIdempotencyKey = preparedPerDb((db) =>
  db
    .select()
    .from(flows)
    .where(and(eq(flows.userId, sql.placeholder("userId")), eq(flows.idempotencyKey, sql.placeholder("key"))))
    .limit(1)
    .prepare("flowd_flow_by_idempotency_key"),
);

const jobsOfFlow = preparedPerDb((db) =>
  db
    .select()
    .from(flowJobs)
    .where(eq(flowJobs.flowId, sql.placeholder("flowId")))
    .orderBy(asc(flowJobs.depth), asc(flowJobs.id))
    .prepare("flowd_jobs_of_flow"),
);

export async function findFlow(db: DbOrTx, userId: string, id: string): Promise<FlowRow | undefined> {
  // Anything that is not an id cannot name a flow: answer "not found" without asking Postgres.
  if (!isId(id)) return undefined;
  const [row] = await flowById(db).execute({ id, userId });
  return row;
}

export async function lockFlow(db: DbOrTx, userId: string, id: string): Promise<FlowRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db.select().from(flows).where(and(eq(flows.id, id), eq(flows.userId, userId))).for("update").limit(1);
  return row;
}

export async function findFlowByIdempotencyKey(db: DbOrTx, userId: string, key: string) {
  const [row] = await flowByIdempotencyKey(db).execute({ userId, key });
  return row;
}

export async function flowJobsOf(db: DbOrTx, flowId: string): Promise<FlowJobRow[]> {
  return jobsOfFlow(db).execute({ flowId });
}

/** What picks flows out: the list route's filters and a bulk action's (a time range on created_at, explicit ids). */
export type FlowMatch = {
  status?: string;
  name?: string;
  data?: Record<string, unknown>;
  definition?: string;
  scheduleId?: string;
  eventId?: string;
  since?: Date;
  until?: Date;
  ids?: string[];
};

export type FlowListFilter = FlowMatch & {
  limit: number;
  before?: { createdAt: Date; id: string };
};

/** Newest first, by (created_at, id) so that pages never skip or repeat a flow. */
export async function listFlows(db: DbOrTx, userId: string, q: FlowListFilter) {
  return listFlowsQuery(db, userId, q);
}

/** A user's flows that `q` picks, as conditions on `flows`. */
export function flowConditions(userId: string, q: FlowMatch): SQL[] {
  const conditions = [eq(flows.userId, userId)];
  if (q.status) conditions.push(eq(flows.status, q.status));
  if (q.name) conditions.push(namePrefix(flows.name, q.name));
  if (q.definition) conditions.push(eq(flows.definition, q.definition));
  if (q.scheduleId) conditions.push(eq(flows.scheduleId, q.scheduleId));
  if (q.eventId) conditions.push(eq(flows.eventId, q.eventId));
  if (q.since) conditions.push(gte(flows.createdAt, q.since));
  if (q.until) conditions.push(lt(flows.createdAt, q.until));
  if (q.ids) conditions.push(inArray(flows.id, q.ids));
  // The root's data, through the roots-only GIN index: its predicate (`parent_id is null`) is repeated
  // here, which is how the planner matches a partial index; the few matches then find their flows by
  // primary key (root_id has no index).
  if (q.data)
    conditions.push(
      sql`${flows.id} in (select r.flow_id from ${flowJobs} r where r.parent_id is null and r.user_id = ${userId} and r.data @> ${JSON.stringify(q.data)}::jsonb)`,
    );
  return conditions;
}

/** The query behind `listFlows`, for a test to check its plan. */
export function listFlowsQuery(db: DbOrTx, userId: string, q: FlowListFilter) {
  const conditions = flowConditions(userId, q);
  if (q.before) conditions.push(olderThan(flows.createdAt, flows.id, q.before));
  return db
    .select()
    .from(flows)
    .where(and(...conditions))
    .orderBy(...newestFirst(flows.createdAt, flows.id))
    .limit(q.limit);
}

/**
 * A flow whose add failed: its rows written at their queued status go back to `pending` (see
 * markJobsUnqueued). A tree's job held for its limits keeps its status: `waiting-children` with
 * its hold says it may not be released before its children are done (see flow-redis.ts).
 */
export async function markFlowUnqueued(db: DbOrTx, flowId: string) {
  await db
    .update(flowJobs)
    .set({ status: "pending", updatedAt: sql`now()` })
    .where(and(eq(flowJobs.flowId, flowId), eq(flowJobs.eventPos, 0), isQueued(flowJobs.status), isNull(flowJobs.waitingFor)));
}

/** Marks every unfinished job of a flow cancelled; returns them as they were, for removal from Redis. */
export async function cancelUnfinished(db: DbOrTx, flowId: string) {
  const rows = await db
    .select({ id: flowJobs.id, jobId: flowJobs.jobId, queueName: flowJobs.queueName, shard: flowJobs.shard, status: flowJobs.status, depth: flowJobs.depth })
    .from(flowJobs)
    .where(and(eq(flowJobs.flowId, flowId), sql`${flowJobs.status} not in (${sql.raw(sqlLiterals(FINISHED_STATUSES))})`))
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
      attempts_base = j.attempts_made, event_pos = 0, updated_at = now(), ready_at = null, started_at = null, finished_at = null,
      -- A child parked when its flow failed (a sibling failed it) is not parked under its new id:
      -- left set, the recorder would skip the new run's waiting/active/delayed states.
      parked_until = null
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
  return (await pendingFlowsQuery(db, olderThanMs, limit)).map((r) => r.flowId);
}

/** The query behind `flowsWithPendingJobs`, for a test to check its plan. */
export const pendingFlowsQuery = (db: DbOrTx, olderThanMs: number, limit: number) =>
  db
    .selectDistinct({ flowId: flowJobs.flowId })
    .from(flowJobs)
    // A job held out of Redis (src/scheduling/) is not the enqueuer's to add; a tree's job held for
    // its limits goes in with its tree (parked, see flow-redis.ts), so one no event was ever
    // recorded for may be a tree whose add failed (every tree has a leaf, held or pending).
    .where(
      and(
        isPending(flowJobs.status),
        or(isNull(flowJobs.waitingFor), sql`(${flowJobs.key} is null and ${flowJobs.waitingFor} in ('concurrency', 'rateLimit') and ${flowJobs.eventPos} = 0)`),
        untouchedFor(flowJobs.updatedAt, olderThanMs),
      ),
    )
    .limit(limit);

/**
 * Flows with jobs Postgres believes are in Redis (queued or running), untouched for `olderThanMs`,
 * in flow id order after `afterFlowId`: a caller walks them all in pages, so the same hundred
 * long-running flows cannot hide the others.
 */
export async function flowsWithQueuedJobs(db: DbOrTx, olderThanMs: number, limit: number, afterFlowId = ""): Promise<string[]> {
  return (await queuedFlowsQuery(db, olderThanMs, limit, afterFlowId)).map((r) => r.flowId);
}

/** The query behind `flowsWithQueuedJobs`, for a test to check its plan. */
export const queuedFlowsQuery = (db: DbOrTx, olderThanMs: number, limit: number, afterFlowId = "") =>
  db
    .selectDistinct({ flowId: flowJobs.flowId })
    .from(flowJobs)
    .where(
      and(
        isQueued(flowJobs.status),
        untouchedFor(flowJobs.updatedAt, olderThanMs),
        gt(flowJobs.flowId, afterFlowId),
      ),
    )
    .orderBy(asc(flowJobs.flowId))
    .limit(limit);

/**
 * Ends jobs Redis lost for good (no parent waits for them any more) as `failed`, with a reason a
 * user can act on; only while they are still queued, so a late real outcome is never overwritten.
 */
export async function failLostJobs(db: DbOrTx, ids: string[], message: string) {
  if (ids.length === 0) return;
  await db
    .update(flowJobs)
    .set({ status: "failed", error: sql`jsonb_build_object('message', ${message}::text, 'attemptsMade', ${flowJobs.attemptsMade})`, updatedAt: sql`now()` })
    .where(and(inArray(flowJobs.id, ids), isQueued(flowJobs.status)));
}
