import { sql } from "drizzle-orm";
import type { Db, DbOrTx } from "../client";
import { GRAPH_STEPS } from "./graph-release";
import { BULLMQ_FINISHED_STATUSES, FINISHED_STATUSES, PARKED_BULLMQ_STATUSES, sqlLiterals, WAITING_STATUSES } from "../../statuses";

/** One job's new status as the recorder writes it, from BullMQ's events or from Redis's job state. */
export interface StatusChange {
  jobId: string;
  status: string;
  result?: unknown;
  error?: { message: string; stack?: string; attemptsMade: number; code?: string };
  /** Failed: attempts made in this run (BullMQ's count, read from the job). */
  attemptsMade?: number;
  /** How many times the job started (went active) in the changes folded into this one. */
  starts: number;
  /**
   * The stream entry id (`ms-seq`): a row only accepts a change with a later one. Kept as text:
   * ms * 1e6 + seq needs 61 bits, more than a double holds exactly, so Postgres does the arithmetic.
   */
  streamId: string;
  /**
   * Epoch ms, from the stream entries folded into this change (or Redis's job hash when
   * converging): when the job last entered `waiting`, last went `active`, and finished.
   */
  readyMs?: number;
  startedMs?: number;
  finishedMs?: number;
  /** The statuses the job went through earlier in the same batch (collapse), oldest first: logged as events before this one. */
  trail?: { status: string; streamId: string }[];
}

export type TrackedTable = "flow_jobs" | "jobs";
/** A status change and the table of the row it is for. */
export type TableChange = { table: TrackedTable; change: StatusChange };

/**
 * A tree's job held for its per-key limits sits in BullMQ's delayed set until a release pass
 * promotes it (src/services/flow-redis.ts): BullMQ's `delayed` for it means "held, ready for its
 * turn", written as `pending` with its hold kept, where a pass finds it. The add that parked it
 * (its first event, in a tree) means the same when a pass let it go before that add reached Redis
 * (a worker's sweeper ran between the create's commit and its add, so the promote found nothing):
 * written `pending` without a hold, where the enqueuer finds it still parked and lets it go
 * (releaseStillParked). Written `delayed`, nothing would look at it again, and its slot stayed taken.
 */
const heldInRedis = (table: TrackedTable) =>
  table === "flow_jobs"
    ? `(v.status = 'delayed' and (j.waiting_for in ('concurrency', 'rateLimit')
         or (j.event_pos = 0 and j.key is null and (j.concurrency_keys is not null or j.rate_key is not null))))`
    : `(j.waiting_for in ('concurrency', 'rateLimit') and v.status = 'delayed')`;

/**
 * The guarded update of one table, as a CTE over the batch `v`: a change applies only when it is
 * newer than the last one applied (stream position), never revives a cancelled job, a removal
 * never overwrites a finished job, and a waiting status the row already holds is not written again
 * — so duplicates and late arrivals are harmless and a fresh job costs no write until it starts.
 */
const guardedUpdate = (table: TrackedTable, returning = "1") => {
  const HELD_IN_REDIS = heldInRedis(table);
  return `
    update ${table} as j set
      status = case when ${HELD_IN_REDIS} then 'pending' else v.status end,
      result = case when v.status = 'completed' then v.result else j.result end,
      error = case when v.status = 'failed'
                   then v.error || jsonb_build_object('attemptsMade', j.attempts_base + coalesce(v.attempts, 0))
                   when v.status = 'completed' then null else j.error end,
      -- A failure reports BullMQ's exact count for this run; otherwise every start is an attempt.
      -- A parked attempt's count was written when it parked; its wake-ups are not new attempts.
      attempts_made = coalesce(j.attempts_base + v.attempts, j.attempts_made + case when j.parked_until is null then v.starts else 0 end),
      event_pos = v.pos,
      parked_until = case when v.status in (${sqlLiterals(FINISHED_STATUSES)}) then null else j.parked_until end,
      waiting_for = case when v.status in (${sqlLiterals(FINISHED_STATUSES)}) then null else j.waiting_for end,
      updated_at = now(),
      -- Run timings ride along in the same write (see jobColumns); a later start replaces an earlier one.
      ready_at = case when ${HELD_IN_REDIS} then j.ready_at else coalesce(to_timestamp(v.ready_ms / 1000.0), j.ready_at) end,
      started_at = coalesce(to_timestamp(v.started_ms / 1000.0), j.started_at),
      finished_at = case when v.status in (${sqlLiterals(BULLMQ_FINISHED_STATUSES)})
                         then coalesce(to_timestamp(v.finished_ms / 1000.0), now()) end
    from v
    where v.tbl = '${table}' and j.job_id = v.job_id and v.pos > j.event_pos and j.status <> 'cancelled'
      and not (v.status = 'cancelled' and j.status in (${sqlLiterals(BULLMQ_FINISHED_STATUSES)}))
      -- What the row already says (written by the API with the add) is not written again.
      and not (v.status = j.status and v.starts = 0 and v.status in (${sqlLiterals(WAITING_STATUSES)}))
      -- A parked http task (its service answered 202) stays active: BullMQ's delay, its wake-up and
      -- the re-run that applies the callback are how flowd waits, not new states of the job.
      and not (j.parked_until is not null and v.status in (${sqlLiterals(PARKED_BULLMQ_STATUSES)}))
    returning ${returning}`;
};

/**
 * The recorder's one statement per batch ($1: the changes, $2: the cursors, both JSON). Fixed text
 * sent through postgres.js as a prepared statement (parsed once per connection); drizzle would rebuild it per batch.
 */
const APPLY_STATUS_BATCH = `
    with recursive v as (
      select r.*, split_part(r.stream_id, '-', 1)::bigint * 1000000 + split_part(r.stream_id, '-', 2)::bigint as pos
      from jsonb_to_recordset($1::jsonb)
        as r(tbl text, job_id text, status text, result jsonb, error jsonb, attempts int, starts int, stream_id text,
             ready_ms bigint, started_ms bigint, finished_ms bigint)
    ),
    -- The batch's earlier statuses per job, for the event triggers (drizzle/0029_batch_event_trails.sql):
    -- transaction-local, set while the statement runs, read by the triggers at its end.
    trail as (select set_config('flowd.trail', $3::text, true) as t),
    fj as (${guardedUpdate("flow_jobs", "j.id, j.flow_id, j.status, j.key, j.opts, j.user_id, j.concurrency_keys")}),
    ${GRAPH_STEPS},
    jb as (${guardedUpdate("jobs", "j.user_id, j.concurrency_keys, j.status")}),
    cur as (
      insert into stream_cursors (queue, last_id, updated_at)
      select queue, last_id, now() from jsonb_to_recordset($2::jsonb) as c(queue text, last_id text)
      on conflict (queue) do update set last_id = excluded.last_id, updated_at = now()
      -- Several recorders may run; a slower one must not move a cursor back.
      where (split_part(excluded.last_id, '-', 1)::bigint, split_part(excluded.last_id, '-', 2)::bigint)
          > (split_part(stream_cursors.last_id, '-', 1)::bigint, split_part(stream_cursors.last_id, '-', 2)::bigint)
      returning 1
    )
    select ((select count(*) from fj) + (select count(*) from jb) + (select count(*) from dropped) + 0 * (select count(*) from cur) + 0 * (select length(t) from trail))::int as changed,
           (select coalesce(jsonb_agg(id), '[]'::jsonb) from (select id from released where waiting_for is null union all select id from woken) x) as released,
           -- Users whose limited jobs finished: each frees slots, for a release pass after the commit (src/scheduling/limit-release.ts).
           (select coalesce(jsonb_agg(distinct user_id), '[]'::jsonb) from (
              select user_id from fj where concurrency_keys is not null and status in (${sqlLiterals(FINISHED_STATUSES)})
              union all select user_id from jb where concurrency_keys is not null and status in (${sqlLiterals(FINISHED_STATUSES)})
              -- and users whose graph jobs the batch moved from their dependencies to their limits,
              union all select user_id from released where waiting_for is not null
              -- or whose tree jobs it found held and ready (HELD_IN_REDIS: the only pending it writes)
              union all select user_id from fj where status = 'pending') f) as limit_users`;

/**
 * Applies a batch of status changes to both tables and moves the stream cursors, all in one
 * statement: one round trip and one commit per batch, and the cursors never run ahead of the rows.
 * In the same statement, graph jobs whose dependencies are now all done are released (their row ids
 * are returned, for the caller to add to Redis after the commit) and those a failure leaves unable
 * to run are cancelled (see graph-release.ts).
 */
export async function applyStatusBatch(db: Db, changes: TableChange[], cursors: Map<string, string>): Promise<number> {
  return (await recordStatusBatch(db, changes, cursors)).changed;
}

/** applyStatusBatch, also answering the row ids of the graph jobs the batch released (to add to Redis). */
export async function recordStatusBatch(
  db: Db,
  changes: TableChange[],
  cursors: Map<string, string>,
): Promise<{ changed: number; released: string[]; limitUsers: string[] }> {
  const batch = changes.map(({ table, change: c }) => ({
    tbl: table,
    job_id: c.jobId,
    status: c.status,
    result: c.status === "completed" ? (c.result ?? null) : null,
    error: c.error ?? null,
    attempts: c.attemptsMade ?? null,
    starts: c.starts,
    stream_id: c.streamId,
    ready_ms: c.readyMs ?? null,
    started_ms: c.startedMs ?? null,
    finished_ms: c.finishedMs ?? null,
  }));
  const cursorRows = [...cursors].map(([queue, last_id]) => ({ queue, last_id }));
  const trail = changes.flatMap(({ table, change: c }) =>
    (c.trail ?? []).map((t, ord) => ({ tbl: table, job_id: c.jobId, status: t.status, pos: streamPos(t.streamId), ord })),
  );
  const [row] = await db.$client.unsafe<{ changed: number; released: string[]; limit_users: string[] }[]>(
    APPLY_STATUS_BATCH,
    [JSON.stringify(batch), JSON.stringify(cursorRows), trail.length > 0 ? JSON.stringify(trail) : ""],
    { prepare: true },
  );
  return { changed: row?.changed ?? 0, released: row?.released ?? [], limitUsers: row?.limit_users ?? [] };
}

/** A stream entry id (`ms-seq`) as the row's `event_pos` holds it: ms * 1e6 + seq, exact (as text). */
const streamPos = (streamId: string) => {
  const [ms, seq] = streamId.split("-");
  return (BigInt(ms ?? "0") * 1_000_000n + BigInt(seq ?? "0")).toString();
};

export async function loadStreamCursors(db: DbOrTx): Promise<Map<string, string>> {
  const rows = await db.execute<{ queue: string; last_id: string }>(sql`select queue, last_id from stream_cursors`);
  return new Map(rows.map((r) => [r.queue, r.last_id]));
}

/**
 * One page of the BullMQ ids of a queue's jobs that Postgres does not yet hold as finished, in id
 * order after `afterJobId`: what the recorder converges from Redis when stream entries were lost.
 */
export async function unfinishedJobIds(db: Db, table: TrackedTable, queue: string, shard: number | null, afterJobId: string, limit: number): Promise<string[]> {
  const rows = await db.$client.unsafe<{ job_id: string }[]>(
    `select job_id from ${table}
      where queue_name = $1 and shard is not distinct from $4::smallint and job_id > $2 and status not in (${sqlLiterals(FINISHED_STATUSES)})
      order by job_id limit $3`,
    [queue, afterJobId, limit, shard],
    { prepare: true },
  );
  return rows.map((r) => r.job_id);
}

/** Whether any session holds the advisory lock `key` (a lease): pg_locks splits a bigint key in two oids. */
export async function isAdvisoryLockHeld(db: Db, key: number): Promise<boolean> {
  const [row] = await db.$client<{ held: boolean }[]>`
    select exists (
      select 1 from pg_locks
      where locktype = 'advisory' and granted and objsubid = 1
        and database = (select oid from pg_database where datname = current_database())
        and classid = ${String(Math.floor(key / 2 ** 32))}::oid and objid = ${String(key % 2 ** 32)}::oid
    ) as held`;
  return row?.held ?? false;
}
