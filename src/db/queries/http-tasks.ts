import { and, desc, eq, isNotNull, isNull, lt, or, sql } from "drizzle-orm";
import type { Db, DbOrTx } from "../client";
import { taskCallbacks, type ApprovalDecision, type CallbackOutcome, type WaitTerms } from "../schema";
import { FINISHED_STATUSES, sqlLiterals } from "../../statuses";
import { GRAPH_STEPS } from "./graph-release";

export type TrackedJobTable = "flow_jobs" | "jobs";

/**
 * A statement that writes a callback row and then its job row locks the job row first, in
 * the order a callback's complete takes them (STORE_OUTCOME: the job's row, then the callback's).
 * Taken the other way round, a callback arriving while the worker parks (a fast service calls back
 * before its 202 is read) or times out deadlocked with it, and Postgres could end the worker's
 * statement: the attempt failed after the service was called, and ran again or failed the job the
 * callback had just completed; a heartbeat beside a complete answered 500. `JOB_LOCKED` in the
 * callback update's condition makes Postgres take the job lock (an init plan) before it touches
 * the callback row.
 */
const LOCK_JOB_FIRST = (table: TrackedJobTable, jobIdSql: string, name = "job_lock") => `${name} as (select 1 from ${table} where job_id = ${jobIdSql} for update)`;
const JOB_LOCKED = "(select count(*) from job_lock) >= 0";
/** The same when the job's table is not known to the statement: the row of that id in either. */
export const LOCK_EITHER_JOB_FIRST = (jobIdSql: (table: TrackedJobTable) => string) =>
  `${LOCK_JOB_FIRST("flow_jobs", jobIdSql("flow_jobs"), "flow_job_lock")}, ${LOCK_JOB_FIRST("jobs", jobIdSql("jobs"), "job_lock")}`;
export const EITHER_JOB_LOCKED = "(select count(*) from flow_job_lock) + (select count(*) from job_lock) >= 0";

/**
 * Writes the callback offered with one attempt, found by the job's BullMQ id in either table, and
 * reads its owner's signing secrets in the same round trip. No row: the job is gone (deleted).
 */
export async function offerCallback(
  db: Db,
  a: { tokenHash: string; jobId: string; attempt: number; deadline: Date },
): Promise<{ table: TrackedJobTable; userId: string; secret: string | null; previousSecret: string | null; previousUntil: Date | null } | undefined> {
  const [row] = await db.$client.unsafe<
    { tbl: TrackedJobTable; user_id: string; secret: string | null; previous_secret: string | null; previous_until: Date | null }[]
  >(
    `with j as (
       select 'flow_jobs' as tbl, user_id, queue_name from flow_jobs where job_id = $2
       union all select 'jobs', user_id, queue_name from jobs where job_id = $2
       limit 1
     ),
     ins as (
       insert into task_callbacks (token_hash, user_id, table_name, job_id, queue_name, attempt, deadline)
       select $1, user_id, tbl, $2, queue_name, $3, $4::timestamptz from j
       returning user_id, table_name
     )
     select ins.table_name as tbl, ins.user_id, s.secret, s.previous_secret, s.previous_until
       from ins left join signing_secrets s on s.user_id = ins.user_id`,
    [a.tokenHash, a.jobId, a.attempt, a.deadline.toISOString()],
    { prepare: true },
  );
  return row && { table: row.tbl, userId: row.user_id, secret: row.secret, previousSecret: row.previous_secret, previousUntil: row.previous_until === null ? null : new Date(row.previous_until) };
}

/**
 * The service answered something other than 202 (or the call failed or was cancelled): its callback
 * URL means nothing any more. The row stays, ended, so a late callback is told why (409 when the job
 * was cancelled or finished, 410 otherwise) instead of 404; pruneCallbacks removes it.
 */
export async function withdrawOffer(db: DbOrTx, tokenHash: string): Promise<void> {
  await db
    .update(taskCallbacks)
    .set({ resolution: "withdrawn", resolvedAt: sql`now()` })
    .where(and(eq(taskCallbacks.tokenHash, tokenHash), isNull(taskCallbacks.parkedAt), isNull(taskCallbacks.resolution)));
}

/**
 * The service answered 202: the offer becomes a wait until `deadline`, and — unless the callback
 * already came (a fast service calls back before flowd reads its answer) — the job row is marked
 * parked, in the same statement: `active`, with this attempt counted, whatever BullMQ's events have
 * reached Postgres so far, since the recorder leaves a parked row alone through the delay.
 * Returns the callback's outcome if it came already; undefined when the offer is gone.
 */
export async function parkOffer(
  db: Db,
  a: { tokenHash: string; table: TrackedJobTable; jobId: string; attempt: number; deadline: Date; heartbeatTimeoutMs: number | null },
): Promise<{ outcome: CallbackOutcome | null } | undefined> {
  const [row] = await db.$client.unsafe<{ outcome: CallbackOutcome | null }[]>(
    `with ${LOCK_JOB_FIRST(a.table, "$2")},
     cb as (
       update task_callbacks set parked_at = now(), deadline = $3::timestamptz,
         heartbeat_timeout_ms = $4::int,
         heartbeat_deadline = case when $4::int is null then null else least($3::timestamptz, now() + make_interval(secs => $4::int / 1000.0)) end
       where token_hash = $1 and resolution is null and ${JOB_LOCKED}
       returning outcome
     ),
     parked as (
       -- parked_until is what the job view shows as callbackUntil: the nearer of the two deadlines.
       update ${a.table} set parked_until = case when $4::int is null then $3::timestamptz else least($3::timestamptz, now() + make_interval(secs => $4::int / 1000.0)) end, status = 'active', attempts_made = attempts_base + $5::int + 1, updated_at = now()
       where job_id = $2 and status not in (${sqlLiterals(FINISHED_STATUSES)})
         and exists (select 1 from cb where outcome is null)
       returning 1
     )
     select outcome, (select count(*) from parked) as parked from cb`,
    [a.tokenHash, a.jobId, a.deadline.toISOString(), a.heartbeatTimeoutMs, a.attempt],
    { prepare: true },
  );
  return row && { outcome: row.outcome };
}

export type ParkedCallback = Pick<typeof taskCallbacks.$inferSelect, "tokenHash" | "tableName" | "outcome" | "deadline" | "heartbeatDeadline" | "kind">;

/** The wait of one parked job attempt that has not ended. */
export async function findParked(db: DbOrTx, jobId: string, attempt: number): Promise<ParkedCallback | undefined> {
  const [row] = await db
    .select({
      tokenHash: taskCallbacks.tokenHash,
      tableName: taskCallbacks.tableName,
      outcome: taskCallbacks.outcome,
      deadline: taskCallbacks.deadline,
      heartbeatDeadline: taskCallbacks.heartbeatDeadline,
      kind: taskCallbacks.kind,
    })
    .from(taskCallbacks)
    // Parked only: an offer whose worker died before reading the answer means the call is made again.
    .where(and(eq(taskCallbacks.jobId, jobId), eq(taskCallbacks.attempt, attempt), isNull(taskCallbacks.resolution), isNotNull(taskCallbacks.parkedAt)))
    .limit(1);
  return row;
}

/**
 * Whether a callback of this attempt holds an outcome no worker applied yet, on any of its URLs:
 * the parked one, or an earlier offer of the same attempt whose call was made again.
 */
export async function hasUnclaimedOutcome(db: DbOrTx, jobId: string, attempt: number): Promise<boolean> {
  const [row] = await db
    .select({ one: sql<number>`1` })
    .from(taskCallbacks)
    .where(and(eq(taskCallbacks.jobId, jobId), eq(taskCallbacks.attempt, attempt), isNull(taskCallbacks.resolution), isNotNull(taskCallbacks.outcome)))
    .limit(1);
  return row !== undefined;
}

/**
 * The wait of one job attempt that already ended (a worker applied its outcome or its timeout) but
 * whose attempt BullMQ never finished: the worker died between the two, and the job ran again.
 */
export async function findEnded(
  db: DbOrTx,
  jobId: string,
  attempt: number,
): Promise<(Pick<ParkedCallback, "outcome" | "deadline" | "heartbeatDeadline"> & { resolution: string; terms: WaitTerms | null }) | undefined> {
  const [row] = await db
    .select({
      outcome: taskCallbacks.outcome,
      resolution: taskCallbacks.resolution,
      deadline: taskCallbacks.deadline,
      heartbeatDeadline: taskCallbacks.heartbeatDeadline,
      terms: taskCallbacks.terms,
    })
    .from(taskCallbacks)
    .where(and(eq(taskCallbacks.jobId, jobId), eq(taskCallbacks.attempt, attempt), isNotNull(taskCallbacks.resolution), isNotNull(taskCallbacks.parkedAt)))
    .orderBy(desc(taskCallbacks.resolvedAt))
    .limit(1);
  return row && row.resolution !== null ? { ...row, resolution: row.resolution } : undefined;
}

/**
 * Ends a wait: `timed_out` only while no callback has come (compare-and-set, so a callback that
 * lands at the deadline wins), the callback's own kind otherwise. With `unpark`, the job row stops
 * being parked now (the attempt fails and may be retried: its next states must be recorded); a
 * completed one stays parked until the recorder writes `completed`. Returns false if it had ended.
 */
export async function endWait(
  db: Db,
  a: { tokenHash: string; table: TrackedJobTable; jobId: string; resolution: "completed" | "failed" | "timed_out"; unpark: boolean },
): Promise<boolean> {
  const [row] = await db.$client.unsafe<{ ended: number }[]>(
    `with ${LOCK_JOB_FIRST(a.table, "$2")},
     cb as (
       update task_callbacks set resolution = $3, resolved_at = now()
       where token_hash = $1 and resolution is null and ${JOB_LOCKED}
         -- A timeout only while no callback came and a deadline has passed: a heartbeat that landed
         -- after the worker read the wait (and was answered 200) moved the deadline it woke for.
         and ($3 <> 'timed_out' or (outcome is null and (deadline <= now() or heartbeat_deadline <= now())))
       returning 1
     ),
     unparked as (
       update ${a.table} set parked_until = null, waiting_for = null
       where job_id = $2 and $4::boolean and exists (select 1 from cb)
       returning 1
     )
     select (select count(*) from cb)::int as ended, (select count(*) from unparked) as unparked`,
    [a.tokenHash, a.jobId, a.resolution, a.unpark],
    { prepare: true },
  );
  return (row?.ended ?? 0) > 0;
}

/**
 * A woken attempt takes its callback's outcome, if one came, ending the wait in the same statement
 * (and un-parking the job row when the outcome is a failure, so its retry is recorded): the common
 * wake-up costs one round trip. Undefined: no outcome yet.
 */
export async function claimOutcome(db: Db, jobId: string, attempt: number): Promise<CallbackOutcome | undefined> {
  const unpark = (table: TrackedJobTable) =>
    `${table}_unparked as (update ${table} set parked_until = null, waiting_for = null where job_id = $1 and exists (select 1 from cb where table_name = '${table}' and outcome->>'kind' = 'fail') returning 1)`;
  const [row] = await db.$client.unsafe<{ outcome: CallbackOutcome }[]>(
    `with ${LOCK_EITHER_JOB_FIRST(() => "$1")},
     cb as (
       update task_callbacks set resolution = case when outcome->>'kind' = 'complete' then 'completed' else 'failed' end, resolved_at = now()
       where job_id = $1 and attempt = $2 and resolution is null and outcome is not null and ${EITHER_JOB_LOCKED}
       returning outcome, table_name
     ), ${unpark("flow_jobs")}, ${unpark("jobs")}
     select outcome, (select count(*) from flow_jobs_unparked) + (select count(*) from jobs_unparked) as unparked from cb`,
    [jobId, attempt],
    { prepare: true },
  );
  return row?.outcome;
}

export type CallbackTarget = {
  tokenHash: string;
  jobId: string;
  queueName: string;
  tableName: TrackedJobTable;
  parkedAt: Date | null;
  outcome: CallbackOutcome | null;
  resolution: string | null;
  deadline: Date;
  heartbeatTimeoutMs: number | null;
  heartbeatDeadline: Date | null;
  /** The job row's status; null when the row no longer has this BullMQ id (deleted, or retried since). */
  jobStatus: string | null;
};

/** A callback's row with its job's current status: what explains a refusal. */
export async function findCallback(db: DbOrTx, tokenHash: string): Promise<CallbackTarget | undefined> {
  const rows = await db.execute<{
    token_hash: string; job_id: string; queue_name: string; table_name: TrackedJobTable; parked_at: string | null;
    outcome: CallbackOutcome | null; resolution: string | null; deadline: string; heartbeat_timeout_ms: number | null;
    heartbeat_deadline: string | null; job_status: string | null;
  }>(sql`
    select c.*, coalesce(
      (select status from flow_jobs where job_id = c.job_id and c.table_name = 'flow_jobs'),
      (select status from jobs where job_id = c.job_id and c.table_name = 'jobs')) as job_status
    from task_callbacks c where c.token_hash = ${tokenHash}`);
  const r = rows[0];
  if (!r) return undefined;
  const date = (v: string | null) => (v === null ? null : new Date(v));
  return {
    tokenHash: r.token_hash,
    jobId: r.job_id,
    queueName: r.queue_name,
    tableName: r.table_name,
    parkedAt: date(r.parked_at),
    outcome: r.outcome,
    resolution: r.resolution,
    deadline: new Date(r.deadline),
    heartbeatTimeoutMs: r.heartbeat_timeout_ms,
    heartbeatDeadline: date(r.heartbeat_deadline),
    jobStatus: r.job_status,
  };
}

/** The callback still waits: unused, not timed out, and its job (under this BullMQ id) unfinished. */
const STILL_WAITING = `c.token_hash = $1 and c.outcome is null and c.resolution is null
  and exists (
    select 1 from flow_jobs j where c.table_name = 'flow_jobs' and j.job_id = c.job_id and j.status not in (${sqlLiterals(FINISHED_STATUSES)})
    union all
    select 1 from jobs j where c.table_name = 'jobs' and j.job_id = c.job_id and j.status not in (${sqlLiterals(FINISHED_STATUSES)}))`;

/** The job's shard (its BullMQ key prefix), from its row: null is the plain prefix. */
export type StoredCallback = {
  jobId: string; queueName: string; shard: number | null; parked: boolean; heartbeatDeadline: Date | null;
  /** Graph jobs the outcome released (row ids), to add to Redis after the commit (scheduling/release.ts). */
  released: string[];
};
type StoredRow = { job_id: string; queue_name: string; shard: number | null; parked: boolean; heartbeat_deadline: string | null; released?: string[] };
const stored = (r: StoredRow | undefined): StoredCallback | undefined =>
  r && {
    jobId: r.job_id,
    queueName: r.queue_name,
    shard: r.shard,
    parked: r.parked,
    heartbeatDeadline: r.heartbeat_deadline === null ? null : new Date(r.heartbeat_deadline),
    released: r.released ?? [],
  };
const STORED_COLUMNS = `job_id, queue_name, parked_at is not null as parked, heartbeat_deadline,
  coalesce((select shard from flow_jobs j where c.table_name = 'flow_jobs' and j.job_id = c.job_id),
           (select shard from jobs j where c.table_name = 'jobs' and j.job_id = c.job_id))::int as shard`;

/**
 * One statement: locks the callback's job row while it is unfinished (a cancel, a delete or
 * another callback holding it finishes first, and a row it ended is passed over), stores the
 * outcome if the URL still waits, and — for a complete — writes the job `completed` with its
 * result at once. The job then counts as finished for any cancel that comes next, so a complete
 * answered 200 always ends completed. The row stays parked (`parked_until` set) until the
 * recorder writes BullMQ's own completion: the wake-up's stale states are not written over it.
 */
const STORE_OUTCOME = (table: TrackedJobTable) => `
  with recursive wanted as (
    select job_id, attempt from task_callbacks
    where token_hash = $1 and table_name = '${table}' and outcome is null and resolution is null
  ),
  locked as (
    select j.id from ${table} j join wanted w on j.job_id = w.job_id
    where j.status not in (${sqlLiterals(FINISHED_STATUSES)})
    for update of j
  ),
  cb as (
    update task_callbacks c set outcome = $2::jsonb, decision = coalesce($3::jsonb, c.decision)
    where c.token_hash = $1 and c.outcome is null and c.resolution is null and exists (select 1 from locked)
    returning ${STORED_COLUMNS}
  ),
  ${table === "flow_jobs" ? "fj" : "completes"} as (
    update ${table} t set status = 'completed', result = $2::jsonb -> 'result', error = null, updated_at = now(), finished_at = now(),
      parked_until = coalesce(t.parked_until, now()),
      attempts_made = greatest(t.attempts_made, t.attempts_base + (select attempt from wanted) + 1)
    where $2::jsonb ->> 'kind' = 'complete' and t.id in (select id from locked) and exists (select 1 from cb)
    returning ${table === "flow_jobs" ? "t.id, t.flow_id, t.status, t.key, t.opts" : "1"}
  ),
  -- A graph job completed here releases its dependents in the same statement, as the recorder's
  -- batch does (graph-release.ts): they start now, not after BullMQ's completion reaches the recorder.
  ${table === "flow_jobs" ? GRAPH_STEPS : "released as (select null::text as id where false)"},
  -- A rejected approval's decision is kept on the job as its result (a failed job keeps its result).
  kept as (
    update ${table} t set result = $3::jsonb, updated_at = now()
    where $3::jsonb is not null and $2::jsonb ->> 'kind' = 'fail' and t.id in (select id from locked) and exists (select 1 from cb)
    returning 1
  )
  select cb.*, (select coalesce(jsonb_agg(id), '[]'::jsonb) from released) as released from cb`;

/**
 * Stores a callback's outcome if it still waits (see STORE_OUTCOME); two callbacks at once take
 * turns on the job row, and the second finds it taken. Locks are taken in the order cancel, retry
 * and delete take them — the flow's row, then the job's — so a callback never deadlocks with them.
 * Undefined: refused (see findCallback why).
 */
export async function storeOutcome(db: Db, tokenHash: string, outcome: CallbackOutcome, decision: ApprovalDecision | null = null): Promise<StoredCallback | undefined> {
  // The recorder locks a root job's row before its flow's (through the flow-status trigger): should
  // the two meet, Postgres ends one of them, and a callback tries again rather than answer 500.
  for (let attempt = 1; ; attempt++) {
    try {
      return await storeOutcomeOnce(db, tokenHash, outcome, decision);
    } catch (err) {
      if ((err as { code?: string }).code !== "40P01" || attempt >= 3) throw err;
    }
  }
}

async function storeOutcomeOnce(db: Db, tokenHash: string, outcome: CallbackOutcome, decision: ApprovalDecision | null): Promise<StoredCallback | undefined> {
  return db.$client.begin(async (tx) => {
    const [target] = await tx.unsafe<{ table_name: TrackedJobTable }[]>(
      `select table_name from task_callbacks where token_hash = $1`,
      [tokenHash],
      { prepare: true },
    );
    if (!target) return undefined;
    if (target.table_name === "flow_jobs")
      await tx.unsafe(
        `select 1 from flows where id = (select j.flow_id from task_callbacks c join flow_jobs j on j.job_id = c.job_id where c.token_hash = $1) for update`,
        [tokenHash],
        { prepare: true },
      );
    const [row] = await tx.unsafe<StoredRow[]>(STORE_OUTCOME(target.table_name), [tokenHash, JSON.stringify(outcome), decision === null ? null : JSON.stringify(decision)], {
      prepare: true,
    });
    return stored(row);
  });
}

/** Pushes the heartbeat deadline out by the task's heartbeatTimeoutMs if it still waits. */
export async function beat(db: Db, tokenHash: string): Promise<StoredCallback | undefined> {
  // The job row's parked_until (its view's callbackUntil) moves with the heartbeat deadline; a row
  // no longer parked (its wait just ended) is left alone.
  const moved = (table: TrackedJobTable) =>
    `${table}_moved as (update ${table} j set parked_until = least(b.deadline, b.heartbeat_deadline)
       from b where b.table_name = '${table}' and j.job_id = b.job_id and b.parked_at is not null and j.parked_until is not null returning 1)`;
  const [row] = await db.$client.unsafe<StoredRow[]>(
    `with ${LOCK_EITHER_JOB_FIRST((table) => `(select job_id from task_callbacks where token_hash = $1 and table_name = '${table}')`)},
     b as (
       update task_callbacks c
         -- never past the callback deadline: heartbeatBy must not promise more time than the wait has
         set heartbeat_deadline = case when c.heartbeat_timeout_ms is null then null else least(c.deadline, now() + make_interval(secs => c.heartbeat_timeout_ms / 1000.0)) end
       where ${STILL_WAITING} and ${EITHER_JOB_LOCKED}
       returning c.*
     ), ${moved("flow_jobs")}, ${moved("jobs")}
     select ${STORED_COLUMNS}, (select count(*) from flow_jobs_moved) + (select count(*) from jobs_moved) as moved from b c`,
    [tokenHash],
    { prepare: true },
  );
  return stored(row);
}

/** Ended waits older than the event log keeps, and offers never parked (their calls long answered). */
export async function pruneCallbacks(db: Db, retentionHours: number): Promise<void> {
  const ended = sql`now() - make_interval(hours => ${retentionHours})`;
  await db
    .delete(taskCallbacks)
    .where(
      or(
        lt(taskCallbacks.resolvedAt, ended),
        and(isNull(taskCallbacks.parkedAt), lt(taskCallbacks.createdAt, sql`now() - interval '1 day'`)),
        // A parked wait whose job is gone (cancelled, deleted) is never resolved by a worker.
        and(isNull(taskCallbacks.resolution), lt(taskCallbacks.deadline, sql`now() - make_interval(hours => ${retentionHours})`)),
        // Nor is a wait step's whose job finished without it (cancelled): its deadline may be far off.
        and(
          isNull(taskCallbacks.resolution),
          lt(taskCallbacks.createdAt, ended),
          sql`${taskCallbacks.kind} <> 'http' and not exists (
            select 1 from flow_jobs j where j.job_id = ${taskCallbacks.jobId} and j.status not in (${sql.raw(sqlLiterals(FINISHED_STATUSES))})
            union all select 1 from jobs j where j.job_id = ${taskCallbacks.jobId} and j.status not in (${sql.raw(sqlLiterals(FINISHED_STATUSES))}))`,
        ),
      ),
    );
}
