import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { flowJobs, jobs, schedules } from "../schema";
import { isPending, isQueued } from "../schema/columns";

/**
 * The shards stored rows still need served: unfinished jobs (pending or believed in Redis) and
 * schedules. The conditions are the partial indexes' own (flow_jobs_queued_idx, …), so the scan
 * reads only unfinished rows, never the whole history.
 */
export async function shardsInUse(db: DbOrTx): Promise<(number | null)[]> {
  const rows = await db.execute<{ shard: number | null }>(sql`
    select distinct shard from (
      select ${flowJobs.shard} as shard from ${flowJobs} where ${isQueued(flowJobs.status)}
      union select ${flowJobs.shard} from ${flowJobs} where ${isPending(flowJobs.status)}
      union select ${jobs.shard} from ${jobs} where ${isQueued(jobs.status)}
      union select ${jobs.shard} from ${jobs} where ${isPending(jobs.status)}
      union select ${schedules.shard} from ${schedules}
    ) s`);
  return rows.map((r) => (r.shard === null ? null : Number(r.shard)));
}
