import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { jobReports } from "../schema";
import { preparedPerDb } from "./prepared";

export type JobReportRow = typeof jobReports.$inferSelect;
export interface LogLine {
  at: string;
  line: string;
}

/** Appends lines within the job's bounds (flowd_append_job_log counts the rest as dropped). */
export async function appendLogLines(db: DbOrTx, jobRowId: string, lines: LogLine[]) {
  await db.execute(sql`select flowd_append_job_log(${jobRowId}, ${JSON.stringify(lines)}::jsonb)`);
}

/**
 * Sets the last progress each BullMQ job reported (by BullMQ id: the row may be a flow job or a
 * single job; a job flowd does not track is skipped). The last value per job in a batch wins.
 */
export async function recordProgress(db: DbOrTx, reports: { jobId: string; progress: unknown }[]) {
  if (reports.length === 0) return;
  const last = new Map(reports.map((r) => [r.jobId, r.progress]));
  const ids = [...last.keys()];
  const values = ids.map((id) => JSON.stringify(last.get(id) ?? null));
  await db.execute(sql`
    insert into job_reports (job_row_id, progress, updated_at)
    select t.id, p.progress, now()
    from unnest(${sql.raw("array[")}${sql.join(ids.map((i) => sql`${i}`), sql`, `)}${sql.raw("]::text[]")},
                ${sql.raw("array[")}${sql.join(values.map((v) => sql`${v}`), sql`, `)}${sql.raw("]::jsonb[]")}) as p(job_id, progress)
    join lateral (
      select id from flow_jobs where job_id = p.job_id
      union all
      select id from jobs where job_id = p.job_id
      limit 1
    ) t on true
    on conflict (job_row_id) do update set progress = excluded.progress, updated_at = now()
    where job_reports.progress is distinct from excluded.progress`);
}

// One array parameter, prepared once: a 1,000-job flow's view otherwise built and parsed a
// statement of 1,000 placeholders on every read.
const reportsOfQuery = preparedPerDb((db) =>
  db
    .select()
    .from(jobReports)
    .where(sql`${jobReports.jobRowId} = any(${sql.placeholder("ids")}::text[])`)
    .prepare("flowd_reports_of"),
);

export async function reportsOf(db: DbOrTx, jobRowIds: string[]): Promise<Map<string, JobReportRow>> {
  if (jobRowIds.length === 0) return new Map();
  const rows = await reportsOfQuery(db).execute({ ids: jobRowIds });
  return new Map(rows.map((r) => [r.jobRowId, r]));
}
