import { inArray, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flowJobs } from "../schema";
import type { FlowJobRow } from "./flows";
import { LIMIT_HOLD } from "./graph-release";

/** Graph jobs by row id, with the jobs they depend on (whose results they are added with). */
export async function rowsWithDependencies(db: DbOrTx, ids: string[]): Promise<FlowJobRow[]> {
  const rows = await db.select().from(flowJobs).where(inArray(flowJobs.id, ids));
  const have = new Set(ids);
  const dependencies = [...new Set(rows.flatMap((r) => r.dependsOn ?? []))].filter((id) => !have.has(id));
  if (dependencies.length === 0) return rows;
  return [...rows, ...(await db.select().from(flowJobs).where(inArray(flowJobs.id, dependencies)))];
}

/**
 * Released graph jobs written at their queued status (graph-release.ts) whose add failed go back to
 * `pending` for the enqueuer (which adds only what Redis does not hold); a row the recorder already
 * moved on (the add reached Redis after all) is left as it wrote it.
 */
export async function markFlowJobsUnqueued(db: DbOrTx, ids: string[]) {
  if (ids.length === 0) return;
  await db.execute(sql`
    update flow_jobs set status = 'pending', updated_at = now()
    where id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)) and waiting_for is null
      and status in ('waiting', 'delayed')`);
}

const satisfied = `(p.status = 'completed' or (p.status = 'failed' and (coalesce((p.opts->>'ignoreDependencyOnFailure')::boolean, false)
  or coalesce((p.opts->>'continueParentOnFailure')::boolean, false))))`;

/**
 * A retry's re-run jobs: each is held (`waiting_for`) while any of its dependencies is not done, so
 * the recorder releases it when they are; those with nothing to wait for may enter Redis at once.
 */
export async function holdForDependencies(db: DbOrTx, ids: string[]) {
  if (ids.length === 0) return;
  await db.execute(sql`
    update flow_jobs d set waiting_for = case when exists (
        select 1 from jsonb_array_elements_text(coalesce(d.depends_on, '[]'::jsonb)) as dep(id)
        join flow_jobs p on p.id = dep.id where not ${sql.raw(satisfied)}) then 'dependencies' else ${sql.raw(LIMIT_HOLD("d"))} end
    where d.id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`);
}

/**
 * Held jobs whose dependencies are all done but that no batch released (a retry held them while
 * the recorder recorded their last dependency), untouched for `olderThanMs`: released now, a
 * compare-and-set on the hold; their ids are returned for the add.
 */
export async function releaseStaleHolds(db: DbOrTx, olderThanMs: number, limit: number): Promise<string[]> {
  const rows = await db.execute<{ id: string }>(sql`
    update flow_jobs d set waiting_for = ${sql.raw(LIMIT_HOLD("d"))}, updated_at = now()
    where d.id in (
      select h.id from flow_jobs h
      where h.waiting_for = 'dependencies' and h.status = 'pending' and h.updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
        and not exists (select 1 from jsonb_array_elements_text(h.depends_on) as dep(id)
                        join flow_jobs p on p.id = dep.id where not ${sql.raw(satisfied)})
      limit ${limit})
      and d.waiting_for = 'dependencies' and d.status = 'pending'
    returning d.id, d.waiting_for`);
  return rows.map((r) => r.id);
}

export async function reopenFlow(db: DbOrTx, flowId: string) {
  await db.execute(sql`update flows set status = 'running', finished_at = null, updated_at = now() where id = ${flowId}`);
}

/** A tree's re-run jobs held for their limits again (see treeHolds in src/services/flows.ts). */
export async function holdTreeRows(db: DbOrTx, holds: { id: string; waitingFor: string; status: string }[]) {
  if (holds.length === 0) return;
  await db.execute(sql`
    update flow_jobs j set waiting_for = h.waiting_for, status = h.status
    from jsonb_to_recordset(${JSON.stringify(holds.map((h) => ({ id: h.id, waiting_for: h.waitingFor, status: h.status })))}::jsonb)
      as h(id text, waiting_for text, status text)
    where j.id = h.id`);
}
