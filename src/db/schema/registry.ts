import { integer, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import type { HandlerDefaults } from "../../job-opts";

/**
 * Every handler any worker process ever said it serves, per queue. A row stays when its workers
 * stop, so a handler once registered stays known (and creates keep validating) while they are down.
 */
export const handlers = pgTable(
  "handlers",
  {
    queue: text("queue").notNull(),
    name: text("name").notNull(),
    /** `builtin`, `module` (FLOWD_HANDLERS) or `external` (seen on an external queue). */
    source: text("source").notNull(),
    description: text("description"),
    dataSchema: jsonb("data_schema"),
    /** A module handler's defaults for its jobs' opts (`concurrency`, `rateLimit`, `expireAfterMs`), merged in at create. */
    defaults: jsonb("defaults").$type<HandlerDefaults>(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.queue, t.name] })],
);

/** One row per running worker process, kept fresh by its heartbeat; a stale row is a dead process. */
export const workers = pgTable("workers", {
  id: text("id").primaryKey(),
  host: text("host").notNull(),
  pid: integer("pid").notNull(),
  version: text("version").notNull(),
  queues: jsonb("queues").notNull().$type<string[]>(),
  /** `queue:name` of each handler it serves. */
  handlers: jsonb("handlers").notNull().$type<string[]>(),
  concurrency: integer("concurrency").notNull(),
  startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
  lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * What a running handler reported about its job (`ctx.log`, `ctx.progress`), apart from the job rows
 * so the hot status updates never rewrite it. Bounded per job; lines beyond the bound are counted.
 */
export const jobReports = pgTable("job_reports", {
  /** The flow job's or single job's row id. */
  jobRowId: text("job_row_id").primaryKey(),
  progress: jsonb("progress"),
  lines: jsonb("lines").notNull().$type<{ at: string; line: string }[]>().default([]),
  bytes: integer("bytes").notNull().default(0),
  dropped: integer("dropped").notNull().default(0),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});
