import { inArray, sql } from "drizzle-orm";
import { jobs } from "../schema";
import type { DbOrTx } from "../client";
import { QUEUED_STATUSES, sqlLiterals } from "../../statuses";
import type { TrackedTable } from "./status";

/**
 * Readies rows whose jobs Redis lost for the reconciler's add, in one statement, so that what
 * Postgres then holds is what the add resumes from (see resumeOptions in services/flow-redis.ts):
 * - a job that was running, not parked, goes back to `waiting`, its lost attempt uncounted: the
 *   re-run counts when it starts, so the attempt is counted once;
 * - a job that was `delayed` keeps the time it was due in `ready_at` (the add wrote `delayed`
 *   itself and left it unset: then created + delay);
 * - under a new BullMQ id (`jobId` differs), the row takes it, and its http task callbacks move
 *   with it (their attempt numbers go on, see http-task.ts), so the URL a parked task's service
 *   holds still completes or fails the job, and an ended one still says why it refuses.
 * Attempts made, `attempts_base` and the status of other rows are kept. Safe to repeat (a pass
 * whose add fails is done again): a re-readied row is `waiting`, and nothing is uncounted twice.
 */
export async function readyLostRows(db: DbOrTx, table: TrackedTable, rows: { id: string; jobId: string }[]): Promise<void> {
  if (rows.length === 0) return;
  const t = sql.raw(table);
  const running = sql`j.status = 'active' and j.parked_until is null`;
  const newId = sql`v.job_id <> j.job_id`;
  await db.execute(sql`
    with v as (select * from jsonb_to_recordset(${JSON.stringify(rows.map((r) => ({ id: r.id, job_id: r.jobId })))}::jsonb) as v(id text, job_id text)),
    before as (select j.id, j.job_id from ${t} j join v on v.id = j.id),
    readied as (
      update ${t} as j set
        job_id = v.job_id,
        event_pos = case when ${newId} then 0 else j.event_pos end,
        ${table === "jobs" ? sql`generation = case when ${newId} then j.generation + 1 else j.generation end,` : sql``}
        status = case when ${running} then 'waiting' else j.status end,
        attempts_made = case when ${running} then greatest(j.attempts_base, j.attempts_made - 1) else j.attempts_made end,
        ready_at = case when ${running} then now()
                        when j.status = 'delayed' then coalesce(j.ready_at, j.created_at + make_interval(secs => coalesce((j.opts->>'delay')::float8, 0) / 1000.0))
                        else j.ready_at end,
        updated_at = now()
      from v where j.id = v.id and j.status in (${sql.raw(sqlLiterals(QUEUED_STATUSES))})
      returning j.id, j.job_id
    )
    update task_callbacks c set job_id = r.job_id
      from readied r join before b on b.id = r.id
      where c.table_name = ${table} and c.job_id = b.job_id and b.job_id <> r.job_id`);
}

/** Single-job rows by id, as readyLostRows left them. */
export async function jobsByIds(db: DbOrTx, ids: string[]) {
  return ids.length === 0 ? [] : db.select().from(jobs).where(inArray(jobs.id, ids));
}
