import { and, desc, eq, sql, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flows, jobs, operationItems, operations, type OperationReason } from "../schema";
import { newestFirst, olderThan } from "./pagination";
import { isId } from "../../ids";

export type OperationRow = typeof operations.$inferSelect;
export type ItemOutcome = "done" | "skipped" | "failed";

/** The table a bulk action works on: its conditions are written against this table alone. */
export type BulkTarget = "flows" | "jobs";
const TABLES = { flows, jobs } as const;

/** How many rows `conditions` pick, counting no further than `cap` (so a huge match costs a bounded scan). */
export async function countMatches(db: DbOrTx, target: BulkTarget, conditions: SQL[], cap: number): Promise<number> {
  const table = TABLES[target];
  const [row] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from (select 1 from ${table} where ${and(...conditions)} limit ${cap}) m`,
  );
  return Number(row?.n ?? 0);
}

/** The first ids `conditions` pick, newest first: what a dry run shows. */
export async function sampleMatches(db: DbOrTx, target: BulkTarget, conditions: SQL[], limit: number): Promise<string[]> {
  const table = TABLES[target];
  const rows = await db
    .select({ id: table.id })
    .from(table)
    .where(and(...conditions))
    .orderBy(...newestFirst(table.createdAt, table.id))
    .limit(limit);
  return rows.map((r) => r.id);
}

/**
 * Writes the operation and snapshots the ids it matched (at most `cap`) in one transaction's
 * statements; returns how many were snapshotted, so the caller can refuse (and roll back) too many.
 */
export async function insertOperation(db: DbOrTx, row: typeof operations.$inferInsert, target: BulkTarget, conditions: SQL[], cap: number) {
  await db.insert(operations).values(row);
  const table = TABLES[target];
  const [inserted] = await db.execute<{ n: number }>(sql`
    with ins as (
      insert into ${operationItems} (operation_id, item_id)
      select ${row.id}, id from ${table} where ${and(...conditions)} limit ${cap}
      returning 1
    )
    select count(*)::int as n from ins`);
  const matched = Number(inserted?.n ?? 0);
  const [op] = await db.update(operations).set({ matched }).where(eq(operations.id, row.id)).returning();
  return op!;
}

export async function findOperation(db: DbOrTx, userId: string, id: string): Promise<OperationRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db.select().from(operations).where(and(eq(operations.id, id), eq(operations.userId, userId))).limit(1);
  return row;
}

export async function listOperations(db: DbOrTx, userId: string, q: { limit: number; before?: { createdAt: Date; id: string } }) {
  const conditions = [eq(operations.userId, userId)];
  if (q.before) conditions.push(olderThan(operations.createdAt, operations.id, q.before));
  return db
    .select()
    .from(operations)
    .where(and(...conditions))
    .orderBy(desc(operations.createdAt), desc(operations.id))
    .limit(q.limit);
}

/** Running → cancelled; the runner sees it before its next batch. Returns the row if it was running. */
export async function cancelOperationRow(db: DbOrTx, userId: string, id: string): Promise<OperationRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db
    .update(operations)
    .set({ status: "cancelled", finishedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(operations.id, id), eq(operations.userId, userId), eq(operations.status, "running")))
    .returning();
  return row;
}

/**
 * Takes a running operation nobody holds (never leased, released, or its holder's lease ran out:
 * the process died) for `owner`. `skip locked`: two processes asking at once take different ones.
 */
export async function claimOperation(db: DbOrTx, owner: string, leaseMs: number): Promise<OperationRow | undefined> {
  const rows = await db.execute<{ id: string }>(sql`
    update ${operations} set lease_owner = ${owner}, lease_until = now() + make_interval(secs => ${leaseMs / 1000}), updated_at = now()
    where id = (
      select id from ${operations}
      where status = 'running' and (lease_until is null or lease_until < now())
      order by created_at limit 1
      for update skip locked
    )
    returning id`);
  const id = rows[0]?.id;
  if (!id) return undefined;
  const [row] = await db.select().from(operations).where(eq(operations.id, id));
  return row;
}

/** The next ids not yet acted on, in id order (ids are time-ordered: oldest first). */
export async function pendingItems(db: DbOrTx, operationId: string, limit: number): Promise<string[]> {
  const rows = await db.execute<{ item_id: string }>(sql`
    select item_id from ${operationItems} where operation_id = ${operationId} and outcome is null order by item_id limit ${limit}`);
  return rows.map((r) => r.item_id);
}

/**
 * One batch's outcomes and the operation's new counts, together; renews the lease. Answers the
 * operation's status afterwards, or undefined when `owner` no longer holds it.
 */
export async function recordBatch(
  db: DbOrTx,
  args: { operationId: string; owner: string; leaseMs: number; outcomes: { id: string; outcome: ItemOutcome }[]; reasons: OperationReason[] },
): Promise<string | undefined> {
  const { operationId, owner, leaseMs, outcomes, reasons } = args;
  const count = (o: ItemOutcome) => outcomes.filter((x) => x.outcome === o).length;
  await db.execute(sql`
    update ${operationItems} as i set outcome = v.outcome
    from jsonb_to_recordset(${JSON.stringify(outcomes)}::jsonb) as v(id text, outcome text)
    where i.operation_id = ${operationId} and i.item_id = v.id and i.outcome is null`);
  const [row] = await db
    .update(operations)
    .set({
      done: sql`${operations.done} + ${count("done")}`,
      skipped: sql`${operations.skipped} + ${count("skipped")}`,
      failed: sql`${operations.failed} + ${count("failed")}`,
      reasons,
      updatedAt: sql`now()`,
      leaseUntil: sql`case when ${operations.status} = 'running' then now() + make_interval(secs => ${leaseMs / 1000}) else null end`,
    })
    .where(and(eq(operations.id, operationId), eq(operations.leaseOwner, owner)))
    .returning({ status: operations.status });
  return row?.status;
}

/** The end of a running operation: `completed`, or `failed` with why. */
export async function finishOperation(db: DbOrTx, operationId: string, owner: string, status: "completed" | "failed", error?: string) {
  await db
    .update(operations)
    .set({ status, error: error ?? null, finishedAt: sql`now()`, updatedAt: sql`now()`, leaseOwner: null, leaseUntil: null })
    .where(and(eq(operations.id, operationId), eq(operations.leaseOwner, owner), eq(operations.status, "running")));
}

/** A stopping process lets go of what it holds, so another takes it over at once rather than after the lease. */
export async function releaseOperations(db: DbOrTx, owner: string) {
  await db
    .update(operations)
    .set({ leaseOwner: null, leaseUntil: null })
    .where(and(eq(operations.leaseOwner, owner), eq(operations.status, "running")));
}
