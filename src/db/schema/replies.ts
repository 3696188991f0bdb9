import { jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * The first answer to a create sent with an Idempotency-Key, replayed as it was to every repeat.
 * Kept apart from flows and jobs so that reading those never drags a large body along.
 */
export const idempotentReplies = pgTable("idempotent_replies", {
  /** The flow's or job's id. */
  resourceId: text("resource_id").primaryKey(),
  body: jsonb("body").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});
