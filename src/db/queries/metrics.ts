import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";

/** Jobs per table, queue and status. A full count: meant for scrapes every few seconds, not per request. */
export async function jobCounts(db: DbOrTx) {
  return db.execute<{ tbl: string; queue: string; status: string; n: number }>(sql`
    select 'flow_jobs' as tbl, queue_name as queue, status, count(*)::int as n from flow_jobs group by 2, 3
    union all
    select 'jobs', queue_name, status, count(*)::int from jobs group by 2, 3`);
}

/** Webhook delivery attempts by outcome. */
export async function deliveryCounts(db: DbOrTx) {
  return db.execute<{ outcome: string; n: number }>(sql`
    select case when status_code between 200 and 299 then 'delivered' when status_code is null then 'network_error' else 'rejected' end as outcome,
           count(*)::int as n
    from webhook_deliveries group by 1`);
}
