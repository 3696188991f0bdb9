import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";

/** Jobs per table, queue and status, from the trigger-kept tallies: a scrape costs the same at any table size. */
export async function jobCounts(db: DbOrTx) {
  return db.execute<{ tbl: string; queue: string; status: string; n: number }>(
    sql`select tbl, queue, status, n::int as n from flowd_job_tallies() order by 1, 2, 3`,
  );
}

/** Webhook delivery attempts ever made, by outcome (kept the same way). */
export async function deliveryCounts(db: DbOrTx) {
  return db.execute<{ outcome: string; n: number }>(sql`select outcome, n::int as n from flowd_delivery_tallies() order by 1`);
}

/** Folds the tallies' deltas even when nobody scrapes, so the tables stay a few rows long. */
export async function foldTallies(db: DbOrTx) {
  await db.execute(sql`select (select count(*) from flowd_job_tallies()) + (select count(*) from flowd_delivery_tallies())`);
}
