import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { users } from "./users";

/**
 * Each user's signing secret for `http` task requests (Standard Webhooks, `whsec_…`), sealed with
 * FLOWD_SECRET_KEY like webhook secrets. After a rotation the previous secret signs alongside the
 * new one until `previous_until`, so receivers can switch over without dropping a call.
 */
export const signingSecrets = pgTable("signing_secrets", {
  userId: text("user_id")
    .primaryKey()
    .references(() => users.id, { onDelete: "cascade" }),
  secret: text("secret").notNull(),
  previousSecret: text("previous_secret"),
  previousUntil: timestamp("previous_until", { withTimezone: true }),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  rotatedAt: timestamp("rotated_at", { withTimezone: true }),
});

/**
 * A parked job's wait — a waitpoint: the single-use callback offered with one `http` task attempt,
 * or a wait step's (`kind`: `sleep`, `signal`, `approval`; see src/scheduling/waiting-for.ts). All
 * park the same way (no worker slot; BullMQ holds the job as delayed until `deadline`), end through
 * the same `outcome` and time out the same way.
 *
 * The single-use callback offered with one `http` task attempt. Written before the request goes
 * out (a fast service may call back before flowd has read its `202`), so the callback always finds
 * its row; only a SHA-256 of the path's token is kept. `outcome` is what the callback said, kept
 * durably before the parked job is woken to apply it; `resolution` says how the attempt's wait ended.
 */
export const taskCallbacks = pgTable(
  "task_callbacks",
  {
    tokenHash: text("token_hash").primaryKey(),
    userId: text("user_id").notNull(),
    /** The tracked job's table and BullMQ id, and which attempt (BullMQ's attemptsMade) it is bound to. */
    tableName: text("table_name").notNull(),
    jobId: text("job_id").notNull(),
    queueName: text("queue_name").notNull(),
    attempt: integer("attempt").notNull(),
    /** Set when the service answered 202: the job waits for the callback until then. */
    parkedAt: timestamp("parked_at", { withTimezone: true }),
    deadline: timestamp("deadline", { withTimezone: true }).notNull(),
    heartbeatTimeoutMs: integer("heartbeat_timeout_ms"),
    heartbeatDeadline: timestamp("heartbeat_deadline", { withTimezone: true }),
    /** `{ kind: "complete", result }` or `{ kind: "fail", message, permanent }`, from the callback. */
    outcome: jsonb("outcome").$type<CallbackOutcome>(),
    /** `completed` | `failed` (by a callback) | `timed_out` | `answered` (not parked) — null while it waits. */
    resolution: text("resolution"),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    /** What the job waits for: `http` (a task's callback) or a wait step's reason (`sleep`, `signal`, `approval`). */
    kind: text("kind").notNull().default("http"),
    /** A `signal` step's key: `POST /v1/signals` `{ key }` completes every open wait of the user on it. */
    signalKey: text("signal_key"),
    /** A wait step's terms: a signal's payload `schema`, an approval's `prompt` and `approvers`, its `timeoutMs`. */
    terms: jsonb("terms").$type<WaitTerms>(),
    /** An approval's decision: `{ approved, by, at, comment? }`, kept after the wait ends. */
    decision: jsonb("decision").$type<ApprovalDecision>(),
  },
  (t) => [
    index("task_callbacks_job_idx").on(t.jobId, t.attempt),
    index("task_callbacks_created_idx").on(t.createdAt),
    // `POST /v1/signals`: the user's open waits on one key.
    index("task_callbacks_signal_idx").on(t.userId, t.signalKey).where(sql`${t.signalKey} is not null and ${t.resolution} is null`),
    // `GET /v1/approvals`: the open approvals, few at any time.
    index("task_callbacks_approvals_idx").on(t.createdAt).where(sql`${t.kind} = 'approval' and ${t.resolution} is null`),
  ],
);

export interface WaitTerms {
  /** A sleep's result when it ends (the durable `sleep` handler's `{ slept }`); a `wait` returns `{ waitedUntil }`. */
  result?: unknown;
  schema?: unknown;
  prompt?: string;
  approvers?: string[];
  timeoutMs?: number;
}

export interface ApprovalDecision {
  approved: boolean;
  by: string;
  at: string;
  comment?: string;
}

export type CallbackOutcome = { kind: "complete"; result: unknown } | { kind: "fail"; message: string; permanent: boolean };
