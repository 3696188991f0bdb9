import { sql, type SQL } from "drizzle-orm";
import { bigint, index, integer, jsonb, smallint, text, timestamp, type AnyPgColumn } from "drizzle-orm/pg-core";
import type { JobOpts } from "../../job-opts";
import { FINISHED_STATUSES, QUEUED_STATUSES, sqlLiterals } from "../../statuses";

/**
 * The columns every tracked job has, whether it belongs to a flow or stands alone: one shape,
 * so one status recorder and one view serve both tables.
 */
export const jobColumns = () => ({
  id: text("id").primaryKey(),
  /** The BullMQ job id; changes when a retry re-adds the job, the row id never does. */
  jobId: text("job_id").notNull().unique(),
  userId: text("user_id").notNull(),
  name: text("name").notNull(),
  queueName: text("queue_name").notNull(),
  /**
   * The Redis shard its job was added under (src/shards.ts): null for the plain FLOWD_PREFIX. Stored,
   * not recomputed, so changing FLOWD_SHARDS never loses sight of a job already in Redis.
   */
  shard: smallint("shard"),
  data: jsonb("data").notNull().$type<Record<string, unknown>>(),
  opts: jsonb("opts").notNull().$type<JobOpts>(),
  status: text("status").notNull().default("waiting"),
  result: jsonb("result"),
  /** `code`: set where flowd itself ended the job for a reason a client may branch on (`expired`). */
  error: jsonb("error").$type<{ message: string; stack?: string; attemptsMade: number; code?: string } | null>(),
  attemptsMade: integer("attempts_made").notNull().default(0),
  /** Attempts made by earlier runs (before a retry re-added the job): `fail`'s `times` counts across runs. */
  attemptsBase: integer("attempts_base").notNull().default(0),
  /**
   * Position (ms * 1e6 + seq) of the last BullMQ stream event applied to this row: an event at or
   * before it is stale or a duplicate and is ignored, so at-least-once delivery never moves a job back.
   */
  eventPos: bigint("event_pos", { mode: "number" }).notNull().default(0),
  /**
   * Set while an `http` task waits for its callback (its service answered 202): the job stays
   * `active` although BullMQ holds it as delayed, so the recorder leaves the row alone until it ends.
   */
  parkedUntil: timestamp("parked_until", { withTimezone: true }),
  /**
   * Why a `pending` job is held out of Redis (src/scheduling/waiting-for.ts): `dependencies` while a
   * graph job waits for its dependencies, `debounce` while a single job's debounce window is open.
   * Null once it may enter Redis — the enqueuer adds only such rows.
   */
  waitingFor: text("waiting_for"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  /**
   * The last run's timings, for `GET /v1/stats` (wait = started - ready, run = finished - started).
   * The recorder takes them from BullMQ's stream entry times, so they cost no extra write: ready
   * when the job last entered `waiting` (or when the API wrote it there) — while it is `delayed`,
   * when its delay or retry backoff ends (BullMQ's `delayed` entry says; the reconciler re-adds a
   * lost job for what is left of it) — started at its last `active`, finished at its `completed` / `failed`.
   */
  readyAt: timestamp("ready_at", { withTimezone: true }),
  startedAt: timestamp("started_at", { withTimezone: true }),
  finishedAt: timestamp("finished_at", { withTimezone: true }),
});

/**
 * The per-key limits a job is under (src/scheduling/limits.ts), copied out of its `opts` so the
 * scheduler counts and finds jobs by key through indexes: its concurrency keys (a slot of each is
 * held from its release until it finishes) and its rate limit key (a start is spent at release).
 */
export const limitColumns = () => ({
  concurrencyKeys: text("concurrency_keys").array(),
  rateKey: text("rate_key"),
});

/**
 * A job holding its keys' slots: unfinished and not held — released, queued, running, or parked
 * (a parked job resumes without a pass, so its slot stays taken). Not held: `pending` with a hold,
 * nor a tree's job held for its limits while BullMQ still waits for its children
 * (`waiting-children` with a hold, see src/services/flow-redis.ts). Text shared by the index and
 * the scans, which must match it word for word.
 */
export const LIMIT_RUNNING = `concurrency_keys is not null and status not in (${sqlLiterals(FINISHED_STATUSES)}) and not (status in ('pending', 'waiting-children') and waiting_for is not null)`;

/** The job's turn key: jobs waiting on a shared key take turns by it (round robin, src/scheduling/). */
export const TURN_KEY = "coalesce(concurrency_keys[1], rate_key)";

/**
 * The scheduler's two partial indexes on a job table: the unfinished released jobs holding slots
 * (counted per key), and the jobs held for a limit, by turn key in creation order.
 */
export const limitIndexes = (table: string, t: { userId: AnyPgColumn; createdAt: AnyPgColumn; status: AnyPgColumn }) => [
  index(`${table}_limit_running_idx`)
    .on(t.userId)
    .where(sql.raw(LIMIT_RUNNING)),
  index(`${table}_limit_held_idx`)
    .on(t.userId, sql.raw(`(${TURN_KEY})`), t.createdAt)
    .where(sql.raw(`waiting_for in ('concurrency', 'rateLimit') and status = 'pending'`)),
];

/**
 * The background scans' status conditions, as literal SQL: partial indexes carry them, and Postgres
 * matches a partial index to a query only by its text, never through a bound parameter (a generic
 * plan would scan the whole table instead).
 */
export const isQueued = (status: AnyPgColumn): SQL => sql`${status} in (${sql.raw(sqlLiterals(QUEUED_STATUSES))})`;
export const isPending = (status: AnyPgColumn): SQL => sql`${status} = 'pending'`;
/** Ready, never started in this run, with an `opts.expireAfterMs`: what the expiry sweep looks at (src/services/expiry.ts). */
export const mayExpire = (t: { status: AnyPgColumn; startedAt: AnyPgColumn; opts: AnyPgColumn }): SQL =>
  sql`${t.status} = 'waiting' and ${t.startedAt} is null and (${t.opts} ->> 'expireAfterMs') is not null`;

/**
 * A tracked job as it is first written: accepted, nothing run. `status` is `pending` (not in Redis
 * yet) or, when the API adds it right after the insert, where the add puts it — so the recorder has
 * nothing to write for BullMQ's `waiting` (about half of all status writes) — and it goes back to
 * `pending` (markUnqueued) if the add fails.
 */
export const freshJobState = (now: Date, status = "pending") => ({
  status,
  result: null,
  error: null,
  attemptsMade: 0,
  attemptsBase: 0,
  eventPos: 0,
  parkedUntil: null,
  createdAt: now,
  updatedAt: now,
  // Written at `waiting`, a job can run from now; BullMQ's `waiting` event for it writes nothing.
  readyAt: status === "waiting" ? now : null,
  startedAt: null,
  finishedAt: null,
});
