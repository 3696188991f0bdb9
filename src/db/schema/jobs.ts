import { sql } from "drizzle-orm";
import { index, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { jobColumns } from "./columns";

/** Single jobs (and, later, schedule ticks): the same shape as a flow job without the flow. */
export const jobs = pgTable(
  "jobs",
  {
    ...jobColumns(),
    scheduleId: text("schedule_id"),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
  },
  (t) => [
    index("jobs_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    index("jobs_user_status_created_idx").on(t.userId, t.status, t.createdAt.desc(), t.id.desc()),
    index("jobs_schedule_idx").on(t.scheduleId).where(sql`${t.scheduleId} is not null`),
    index("jobs_pending_idx").on(t.createdAt).where(sql`${t.status} = 'pending'`),
    uniqueIndex("jobs_user_idempotency_idx").on(t.userId, t.idempotencyKey).where(sql`${t.idempotencyKey} is not null`),
  ],
);
