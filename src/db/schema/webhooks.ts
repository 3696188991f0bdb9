import { sql } from "drizzle-orm";
import { bigint, bigserial, index, integer, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import { users } from "./users";

/**
 * A user's webhook endpoint. The secret signs deliveries, so it is kept (and shown once, at creation):
 * sealed with FLOWD_SECRET_KEY (`v1:…`, src/secret-box.ts) when a key is set, in clear otherwise.
 */
export const webhooks = pgTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    events: jsonb("events").notNull().$type<string[]>(),
    description: text("description"),
    secret: text("secret").notNull(),
    disabledAt: timestamp("disabled_at", { withTimezone: true }),
    disabledReason: text("disabled_reason"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("webhooks_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc())],
);

/** Every delivery attempt, kept for the endpoint's owner to read. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    webhookId: text("webhook_id").notNull().references(() => webhooks.id, { onDelete: "cascade" }),
    eventSeq: bigint("event_seq", { mode: "number" }).notNull(),
    attempt: integer("attempt").notNull(),
    statusCode: integer("status_code"),
    durationMs: integer("duration_ms").notNull(),
    error: text("error"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("webhook_deliveries_webhook_idx").on(t.webhookId, t.id.desc())],
);

/**
 * The outbox: one row per event and endpoint still to be delivered, written in the transaction that
 * moves the dispatch cursor. `pending` rows wait here (for `next_attempt_at`, and for a free slot of
 * their user and endpoint); `running` rows have been handed to Redis as hand-off `handoffs` (the
 * BullMQ job `<seq>-<webhook>-<handoffs>`); `done` rows ended (answered 2xx, or attempts ran out)
 * and are kept a day, so reading the same events again adds nothing twice. Disabling or deleting
 * the endpoint deletes its rows.
 */
export const webhookOutbox = pgTable(
  "webhook_outbox",
  {
    webhookId: text("webhook_id").notNull().references(() => webhooks.id, { onDelete: "cascade" }),
    eventSeq: bigint("event_seq", { mode: "number" }).notNull(),
    userId: text("user_id").notNull(),
    state: text("state").notNull().default("pending").$type<"pending" | "running" | "done">(),
    /** Attempts made so far (the attempt log has one row for each). */
    attempts: integer("attempts").notNull().default(0),
    /** Times the row was handed to Redis: part of the job id, so a stale job can tell it is stale. */
    handoffs: integer("handoffs").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    handedAt: timestamp("handed_at", { withTimezone: true }),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
    traceparent: text("traceparent"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.webhookId, t.eventSeq] }),
    // Claiming: due rows per endpoint, oldest first.
    index("webhook_outbox_pending_idx").on(t.webhookId, t.nextAttemptAt, t.eventSeq).where(sql`state = 'pending'`),
    // Whether another endpoint of the user has a row due (a finished delivery passes its slot on only if not).
    index("webhook_outbox_user_pending_idx").on(t.userId, t.nextAttemptAt).where(sql`state = 'pending'`),
    // The next due time, for the dispatcher's timer.
    index("webhook_outbox_due_idx").on(t.nextAttemptAt).where(sql`state = 'pending'`),
    // Slots in use per user and endpoint; and the reconciler's look at what Redis should hold.
    index("webhook_outbox_running_idx").on(t.userId, t.webhookId).where(sql`state = 'running'`),
    // Endpoints with a delivery being retried get one slot.
    index("webhook_outbox_retrying_idx").on(t.webhookId).where(sql`attempts > 0 and state <> 'done'`),
    // Pruning ended rows.
    index("webhook_outbox_done_idx").on(t.finishedAt).where(sql`state = 'done'`),
  ],
);

/** How far the webhook dispatcher has read the event log; its row lock lets one dispatcher work at a time. */
export const dispatchCursors = pgTable("dispatch_cursors", {
  name: text("name").primaryKey(),
  seq: bigint("seq", { mode: "number" }).notNull(),
});
