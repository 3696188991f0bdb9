import { sql } from "drizzle-orm";
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
