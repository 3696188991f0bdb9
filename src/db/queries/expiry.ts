import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import type { TrackedTable } from "./status";

export interface ExpiredJob {
  tbl: TrackedTable;
  jobId: string;
  queueName: string;
  shard: number | null;
  expireAfterMs: number;
}

/**
 * The condition text must repeat the partial indexes' predicate (mayExpire in schema/columns.ts),
 * since Postgres matches a partial index to a query by its text.
 */
const overdue = (table: TrackedTable) => sql.raw(`
  select '${table}' as tbl, job_id, queue_name, shard, (opts ->> 'expireAfterMs')::bigint as expire_after_ms, ready_at
  from ${table}
  where status = 'waiting' and started_at is null and (opts ->> 'expireAfterMs') is not null
    and ready_at + (opts ->> 'expireAfterMs')::bigint * interval '1 millisecond' <= now()`);

/**
 * Jobs that became ready (entered `waiting`: created, their delay ended, their children or
 * dependencies done) more than their `opts.expireAfterMs` ago and have not started: the expiry
 * sweep fails them (src/services/expiry.ts). Oldest ready first, `limit` per table.
 */
export async function overdueJobs(db: DbOrTx, limit: number): Promise<ExpiredJob[]> {
  const rows = await db.execute<{ tbl: TrackedTable; job_id: string; queue_name: string; shard: number | null; expire_after_ms: string }>(overdueJobsSql(limit));
  return rows.map((r) => ({ tbl: r.tbl, jobId: r.job_id, queueName: r.queue_name, shard: r.shard, expireAfterMs: Number(r.expire_after_ms) }));
}

/** The statement behind `overdueJobs`, for a test to check its plan. */
export const overdueJobsSql = (limit: number) => sql`
    (${overdue("flow_jobs")} order by ready_at limit ${limit})
    union all
    (${overdue("jobs")} order by ready_at limit ${limit})`;
