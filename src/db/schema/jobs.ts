import { sql, type SQL } from "drizzle-orm";
import { bigint, boolean, index, integer, jsonb, pgTable, smallint, text, timestamp, uniqueIndex, type AnyPgColumn } from "drizzle-orm/pg-core";
import { users } from "./users";
import { isPending, isQueued, jobColumns, limitColumns, limitIndexes, mayExpire } from "./columns";
import { BULLMQ_FINISHED_STATUSES, sqlLiterals } from "../../statuses";

/**
 * A job that ran to an outcome (completed or failed), as literal SQL: the stats indexes carry it
 * and the stats query repeats it, since a partial index matches a query only by its text.
 */
export const hasRunOutcome = (status: AnyPgColumn): SQL => sql`${status} in (${sql.raw(sqlLiterals(BULLMQ_FINISHED_STATUSES))})`;

/** Single jobs and schedule ticks: the same shape as a flow job without the flow. */
export const jobs = pgTable(
  "jobs",
  {
    ...jobColumns(),
    /** The schedule whose tick created it; no foreign key, since deleting a schedule keeps its jobs. */
    scheduleId: text("schedule_id"),
    /** Bumped on every retry; the retried job gets the BullMQ id `<id>-<generation>`. */
    generation: integer("generation").notNull().default(0),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    /** The creating request's W3C traceparent (tracing on only): its webhook deliveries join that trace. */
    traceparent: text("traceparent"),
    // opts.debounce (README "Job options"): held `pending` with waiting_for = 'debounce' until
    // `debounce_until`; each create with the same key in the window moves it on and counts here.
    debounceKey: text("debounce_key"),
    debounceUntil: timestamp("debounce_until", { withTimezone: true }),
    /** Creates collapsed into this job after the first (49 for 50 creates). */
    debounced: integer("debounced").notNull().default(0),
    // Per-key limits (src/scheduling/limits.ts): the keys a job is limited on (its hold is waiting_for).
    ...limitColumns(),
  },
  (t) => [
    ...limitIndexes("jobs", t),
    index("jobs_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    index("jobs_user_status_created_idx").on(t.userId, t.status, t.createdAt.desc(), t.id.desc()),
    index("jobs_schedule_idx").on(t.scheduleId).where(sql`${t.scheduleId} is not null`),
    index("jobs_pending_idx").on(t.createdAt).where(isPending(t.status)),
    // The reconciler's scan for single jobs believed in Redis (see flow_jobs_queued_idx).
    index("jobs_queued_idx").on(t.updatedAt).where(isQueued(t.status)),
    uniqueIndex("jobs_user_idempotency_idx").on(t.userId, t.idempotencyKey).where(sql`${t.idempotencyKey} is not null`),
    // `GET /v1/jobs?data=` (containment, `@>`); jsonb_path_ops is smaller and faster for `@>` alone.
    index("jobs_data_idx").using("gin", t.data.op("jsonb_path_ops")),
    // `GET /v1/stats`: a user's finished jobs by the minute they finished in.
    index("jobs_user_finished_idx").on(t.userId, t.updatedAt).where(hasRunOutcome(t.status)),
    // One open debounce window per user and key: concurrent creates collapse into one row (the
    // upsert's conflict target); and the enqueuer's look-up of windows that have ended.
    uniqueIndex("jobs_user_debounce_idx").on(t.userId, t.debounceKey).where(sql`${t.waitingFor} = 'debounce' and ${t.status} = 'pending'`),
    // The expiry sweep: ready jobs with an expireAfterMs that have not started, oldest ready first.
    index("jobs_expiry_idx").on(t.readyAt).where(mayExpire(t)),
    index("jobs_debounce_until_idx").on(t.debounceUntil).where(sql`${t.waitingFor} = 'debounce' and ${t.status} = 'pending'`),
    // /metrics counts parked wait steps by reason without reading the table.
    index("jobs_parked_idx").on(t.waitingFor).where(sql`${t.waitingFor} is not null and ${t.status} = 'active'`),
  ],
);

/**
 * Schedules are kept here, not only in Redis: Redis holds the BullMQ job scheduler that ticks, and
 * flowd registers it again from this row whenever Redis has lost it.
 */
export const schedules = pgTable(
  "schedules",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    pattern: text("pattern"),
    /** Milliseconds; bigint because the allowed range (up to a year) passes a 32-bit integer's 24.8 days. */
    every: bigint("every", { mode: "number" }),
    tz: text("tz"),
    /** A schedule starts either a single job (these three) or a definition's run (the run_* columns). */
    jobName: text("job_name"),
    jobData: jsonb("job_data").$type<Record<string, unknown>>(),
    jobOpts: jsonb("job_opts").$type<Record<string, unknown>>(),
    runDefinition: text("run_definition"),
    /** Null: the definition's latest version at each firing. */
    runVersion: integer("run_version"),
    runInput: jsonb("run_input"),
    /** Firings missed while nothing ran are started late (bounded) instead of skipped. */
    catchUp: boolean("catch_up").notNull().default(false),
    paused: boolean("paused").notNull().default(false),
    /** The Redis shard its job scheduler lives on (see jobColumns' `shard`). */
    shard: smallint("shard"),
    lastRunAt: timestamp("last_run_at", { withTimezone: true }),
    nextRunAt: timestamp("next_run_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("schedules_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc())],
);
