import { sql, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flowJobs, flows, jobs } from "../schema";
import { hasRunOutcome } from "../schema/jobs";

/** A user's flows by status now (from the user/status index). */
export async function flowCountsByStatus(db: DbOrTx, userId: string): Promise<{ status: string; n: number }[]> {
  return (await db.execute(sql`
    select ${flows.status} as status, count(*)::int as n from ${flows} where ${flows.userId} = ${userId} group by 1`)) as unknown as {
    status: string;
    n: number;
  }[];
}

/** A user's jobs (single jobs and flows' jobs together) by status now. */
export async function jobCountsByStatus(db: DbOrTx, userId: string): Promise<{ status: string; n: number }[]> {
  return (await db.execute(sql`
    select status, sum(n)::int as n from (
      select ${jobs.status} as status, count(*) as n from ${jobs} where ${jobs.userId} = ${userId} group by 1
      union all
      select ${flowJobs.status}, count(*) from ${flowJobs} where ${flowJobs.userId} = ${userId} group by 1
    ) c group by 1`)) as unknown as { status: string; n: number }[];
}

/**
 * Jobs that finished (completed or failed) per minute since `from`, by the minute of their last
 * change: a finished job is not touched again until a retry, which starts it over. The status
 * condition is the partial indexes' own text, so both tables are read through them.
 */
export async function finishedPerMinute(db: DbOrTx, userId: string, from: Date) {
  const since = from.toISOString();
  return (await db.execute(sql`
    select to_char(date_trunc('minute', at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:00"Z"') as minute, status, count(*)::int as n from (
      select ${jobs.updatedAt} as at, ${jobs.status} as status from ${jobs}
        where ${jobs.userId} = ${userId} and ${hasRunOutcome(jobs.status)} and ${jobs.updatedAt} >= ${since}::timestamptz
      union all
      select ${flowJobs.updatedAt}, ${flowJobs.status} from ${flowJobs}
        where ${flowJobs.userId} = ${userId} and ${hasRunOutcome(flowJobs.status)} and ${flowJobs.updatedAt} >= ${since}::timestamptz
    ) f group by 1, 2 order by 1`)) as unknown as { minute: string; status: string; n: number }[];
}

export interface HandlerTimingRow {
  handler: string;
  completed: number;
  failed: number;
  /** [p50, p95] in ms; null when no job of the handler has the times (never started, or written before they were kept). */
  run_ms: [number, number] | null;
  wait_ms: [number, number] | null;
}

/**
 * Per handler (job name), the jobs that finished since `from` and their last run's p50/p95 run time
 * (finished - started) and wait (started - ready), computed in Postgres over the same partial
 * indexes as `finishedPerMinute`. Wait is clamped at 0: ready may come from the API's clock and
 * started from Redis's.
 */
export async function handlerTimings(db: DbOrTx, userId: string, from: Date): Promise<HandlerTimingRow[]> {
  const since = from.toISOString();
  const part = (t: typeof jobs | typeof flowJobs) => sql`
    select ${t.name} as name, ${t.status} as status, ${t.readyAt} as ready_at, ${t.startedAt} as started_at, ${t.finishedAt} as finished_at
    from ${t} where ${t.userId} = ${userId} and ${hasRunOutcome(t.status)} and ${t.updatedAt} >= ${since}::timestamptz`;
  // greatest() skips nulls, so the case keeps a missing time out of the percentile instead of a 0;
  // date_part is float arithmetic, where extract() computes in numeric (about twice the time here).
  const ms = (a: SQL, b: SQL) => sql`case when ${a} is not null and ${b} is not null then greatest(0, date_part('epoch', ${a} - ${b}) * 1000) end`;
  return (await db.execute(sql`
    select name as handler,
      count(*) filter (where status = 'completed')::int as completed,
      count(*) filter (where status = 'failed')::int as failed,
      percentile_cont(array[0.5, 0.95]) within group (order by ${ms(sql`finished_at`, sql`started_at`)}) as run_ms,
      percentile_cont(array[0.5, 0.95]) within group (order by ${ms(sql`started_at`, sql`ready_at`)}) as wait_ms
    from (${part(jobs)} union all ${part(flowJobs)}) f
    group by name order by name`)) as unknown as HandlerTimingRow[];
}
