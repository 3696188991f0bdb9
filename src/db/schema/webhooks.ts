import { bigint, bigserial, index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
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

/** How far the webhook dispatcher has read the event log; its row lock lets one dispatcher work at a time. */
export const dispatchCursors = pgTable("dispatch_cursors", {
  name: text("name").primaryKey(),
  seq: bigint("seq", { mode: "number" }).notNull(),
});
