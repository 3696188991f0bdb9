import { bigint, bigserial, index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/** The event log, appended to by triggers only (see drizzle/*_events_trigger.sql). */
export const events = pgTable(
  "events",
  {
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    userId: text("user_id").notNull(),
    flowId: text("flow_id"),
    jobId: text("job_id"),
    type: text("type").notNull(),
    status: text("status"),
    data: jsonb("data"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // Replay for one user (subscribe all) and for one flow, and retention pruning by age.
    index("events_user_seq_idx").on(t.userId, t.seq),
    index("events_flow_seq_idx").on(t.flowId, t.seq),
    index("events_at_idx").on(t.at),
  ],
);

/** Where the status recorder stopped reading each queue's BullMQ event stream. */
export const streamCursors = pgTable("stream_cursors", {
  queue: text("queue").primaryKey(),
  lastId: text("last_id").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** One row: the highest seq deleted by retention, so `after` older than what is kept is recognised. */
export const eventLogState = pgTable("event_log_state", {
  id: integer("id").primaryKey(),
  prunedThrough: bigint("pruned_through", { mode: "number" }).notNull().default(0),
});
