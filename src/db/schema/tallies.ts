import { bigint, pgTable, text } from "drizzle-orm/pg-core";

/**
 * Running counts for /metrics, kept by triggers so a scrape never counts whole tables. Triggers only
 * append signed deltas (no row is updated, so concurrent writers never wait on a counter row); a
 * scrape folds them into one row per key first (`flowd_job_tallies()`).
 */
export const jobTallies = pgTable("job_tallies", {
  tbl: text("tbl").notNull(),
  queue: text("queue").notNull(),
  status: text("status").notNull(),
  n: bigint("n", { mode: "number" }).notNull(),
});

/** Webhook delivery attempts by outcome, kept the same way. */
export const deliveryTallies = pgTable("delivery_tallies", {
  outcome: text("outcome").notNull(),
  n: bigint("n", { mode: "number" }).notNull(),
});
