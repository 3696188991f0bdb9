import type { Db } from "../client";
import { EITHER_JOB_LOCKED, LOCK_EITHER_JOB_FIRST, type TrackedJobTable } from "./http-tasks";
import type { CallbackOutcome, WaitTerms } from "../schema";
import { FINISHED_STATUSES, sqlLiterals } from "../../statuses";

/**
 * Wait steps (`wait`, `signal`, `approval`) park through the same rows as `http` tasks' callbacks
 * (task_callbacks, `kind` saying what the wait is for): claimed, timed out, pruned and completed by
 * the same statements (http-tasks.ts). What differs is here: a wait step parks at once (nothing is
 * called first), and routes find a job's open wait by the job's row id and the caller.
 */

const UNFINISHED = `status not in (${sqlLiterals(FINISHED_STATUSES)})`;

const parkRow = (table: TrackedJobTable) => `
  ${table}_parked as (
    update ${table} set parked_until = $4::timestamptz, waiting_for = $5, status = 'active',
      attempts_made = attempts_base + $3::int + 1, updated_at = now()
    where job_id = $2 and ${UNFINISHED} and exists (select 1 from ins where table_name = '${table}')
    returning 1
  )`;

/**
 * Writes a wait step's wait, already parked until `deadline`, and marks its job row parked in the
 * same statement: `active`, waiting for `kind`, this attempt counted (the recorder leaves a parked
 * row alone through BullMQ's delay). Undefined: the job's row is gone or finished (cancelled).
 */
export async function parkWaitStep(
  db: Db,
  a: { tokenHash: string; jobId: string; attempt: number; kind: string; deadline: Date; signalKey: string | null; terms: WaitTerms },
): Promise<{ table: TrackedJobTable } | undefined> {
  const [row] = await db.$client.unsafe<{ table_name: TrackedJobTable }[]>(
    `with j as (
       select 'flow_jobs' as tbl, user_id, queue_name from flow_jobs where job_id = $2 and ${UNFINISHED}
       union all select 'jobs', user_id, queue_name from jobs where job_id = $2 and ${UNFINISHED}
       limit 1
     ),
     ins as (
       insert into task_callbacks (token_hash, user_id, table_name, job_id, queue_name, attempt, deadline, parked_at, kind, signal_key, terms)
       select $1, user_id, tbl, $2, queue_name, $3, $4::timestamptz, now(), $5, $6, $7::jsonb from j
       returning table_name
     ),
     ${parkRow("flow_jobs")}, ${parkRow("jobs")}
     select table_name from ins`,
    [a.tokenHash, a.jobId, a.attempt, a.deadline.toISOString(), a.kind, a.signalKey, JSON.stringify(a.terms)],
    { prepare: true },
  );
  return row && { table: row.table_name };
}

/** A job as the wait routes see it, with its open wait (unanswered, not timed out) if it has one. */
export interface WaitTarget {
  table: TrackedJobTable;
  id: string;
  jobId: string;
  userId: string;
  ownerName: string;
  status: string;
  waitingFor: string | null;
  /** Its latest wait step's wait (ended too: who may decide an approval outlives the decision). */
  wait: { tokenHash: string; kind: string; terms: WaitTerms | null; decided: boolean; open: boolean } | null;
}

type TargetRow = {
  tbl: TrackedJobTable; id: string; job_id: string; user_id: string; owner_name: string; status: string; waiting_for: string | null;
  token_hash: string | null; kind: string | null; terms: WaitTerms | null; decided: boolean | null; open: boolean | null;
};

const TARGET = (table: TrackedJobTable, where: string) => `
  select '${table}' as tbl, j.id, j.job_id, j.user_id, u.name as owner_name, j.status, j.waiting_for,
         c.token_hash, c.kind, c.terms, c.decided, c.open
  from ${table} j join users u on u.id = j.user_id
  left join lateral (
    select token_hash, kind, terms, outcome is not null as decided, resolution is null as open from task_callbacks c
    where c.job_id = j.job_id and c.kind <> 'http' and c.parked_at is not null
    order by c.created_at desc limit 1
  ) c on true
  where ${where}`;

const target = (r: TargetRow): WaitTarget => ({
  table: r.tbl,
  id: r.id,
  jobId: r.job_id,
  userId: r.user_id,
  ownerName: r.owner_name,
  status: r.status,
  waitingFor: r.waiting_for,
  wait: r.token_hash === null ? null : { tokenHash: r.token_hash, kind: r.kind!, terms: r.terms, decided: r.decided === true, open: r.open === true },
});

/** The job of this row id (a flow's job or a single job, anyone's: the caller decides who may see it). */
export async function findWaitTarget(db: Db, id: string): Promise<WaitTarget | undefined> {
  const [row] = await db.$client.unsafe<TargetRow[]>(
    `${TARGET("flow_jobs", "j.id = $1")} union all ${TARGET("jobs", "j.id = $1")} limit 1`,
    [id],
    { prepare: true },
  );
  return row && target(row);
}

/** The user's jobs waiting for a signal on `key`, oldest first (at most `limit`). */
export async function findSignalWaits(db: Db, userId: string, key: string, limit: number): Promise<WaitTarget[]> {
  const rows = await db.$client.unsafe<(TargetRow & { created_at: Date })[]>(
    `select c.table_name as tbl, coalesce(fj.id, jb.id) as id, c.job_id, c.user_id, '' as owner_name,
            coalesce(fj.status, jb.status) as status, coalesce(fj.waiting_for, jb.waiting_for) as waiting_for,
            c.token_hash, c.kind, c.terms, false as decided, true as open
     from task_callbacks c
     left join flow_jobs fj on c.table_name = 'flow_jobs' and fj.job_id = c.job_id
     left join jobs jb on c.table_name = 'jobs' and jb.job_id = c.job_id
     where c.user_id = $1 and c.signal_key = $2 and c.resolution is null and c.outcome is null and c.parked_at is not null
       and coalesce(fj.status, jb.status) not in (${sqlLiterals(FINISHED_STATUSES)})
     order by c.created_at limit $3`,
    [userId, key, limit],
    { prepare: true },
  );
  return rows.map(target);
}

/** The user's id by name, for approvers named in an approval step. */
export async function userNameOf(db: Db, userId: string): Promise<string | undefined> {
  const [row] = await db.$client.unsafe<{ name: string }[]>(`select name from users where id = $1`, [userId], { prepare: true });
  return row?.name;
}

/** Counts of parked wait steps by reason, for /metrics. */
export async function countParkedWaits(db: Db): Promise<Record<string, number>> {
  const rows = await db.$client.unsafe<{ reason: string; n: number }[]>(
    `select waiting_for as reason, count(*)::int as n from (
       select waiting_for from flow_jobs where waiting_for is not null and status = 'active'
       union all select waiting_for from jobs where waiting_for is not null and status = 'active') w
     group by waiting_for`,
  );
  return Object.fromEntries(rows.map((r: { reason: string; n: number }) => [r.reason, r.n]));
}

/** Issues a new completion URL for a job's open wait: its token changes, so an earlier URL stops working. */
export async function rotateWaitToken(db: Db, oldHash: string, newHash: string): Promise<boolean> {
  const rows = await db.$client.unsafe(
    `update task_callbacks set token_hash = $2 where token_hash = $1 and resolution is null and outcome is null returning 1`,
    [oldHash, newHash],
    { prepare: true },
  );
  return rows.length > 0;
}

/** A wait step's terms and job, by its token's hash (undefined for an `http` task's callback or none). */
export async function waitTermsOf(db: Db, tokenHash: string): Promise<{ terms: WaitTerms | null; jobId: string } | undefined> {
  const [row] = await db.$client.unsafe<{ terms: WaitTerms | null; job_id: string }[]>(
    `select terms, job_id from task_callbacks where token_hash = $1 and kind <> 'http'`,
    [tokenHash],
    { prepare: true },
  );
  return row && { terms: row.terms, jobId: row.job_id };
}

/** A woken wait step's wait, and how this wake-up ended it (null: it goes on waiting, or times out). */
export interface WokenWait {
  tokenHash: string;
  tableName: TrackedJobTable;
  kind: string;
  outcome: CallbackOutcome | null;
  deadline: Date;
  terms: WaitTerms | null;
  ended: "completed" | "failed" | null;
}

/**
 * The common wake-ups of a wait step in one round trip (a hundred sleepers waking at once on two
 * slots leave ~20 ms each): ends the attempt's open wait when a signal or decision came (claiming
 * it, and un-parking the job row when it is a failure, so the retry is recorded) or when a sleep's
 * time has come — the job row then stays parked until the recorder writes `completed`. A wait still
 * running, or one whose timeout passed, is returned as it is for the caller to park or time out.
 */
export async function wakeWaitStep(db: Db, jobId: string, attempt: number): Promise<WokenWait | undefined> {
  const unpark = (table: TrackedJobTable) =>
    `${table}_unparked as (update ${table} set parked_until = null, waiting_for = null
       where job_id = $1 and exists (select 1 from ended where table_name = '${table}' and resolution = 'failed') returning 1)`;
  const [row] = await db.$client.unsafe<
    { token_hash: string; table_name: TrackedJobTable; kind: string; outcome: CallbackOutcome | null; deadline: Date; terms: WaitTerms | null; ended: "completed" | "failed" | null }[]
  >(
    `with ${LOCK_EITHER_JOB_FIRST(() => "$1")},
     w as (
       select token_hash, table_name, kind, outcome, deadline, terms from task_callbacks
       where job_id = $1 and attempt = $2 and resolution is null and parked_at is not null and ${EITHER_JOB_LOCKED}
       order by created_at desc limit 1
     ),
     ended as (
       update task_callbacks c
         set resolution = case when w.outcome is null then 'completed' when w.outcome->>'kind' = 'complete' then 'completed' else 'failed' end,
             resolved_at = now()
       from w
       where c.token_hash = w.token_hash and c.resolution is null
         and (w.outcome is not null or (w.kind = 'sleep' and w.deadline <= now()))
       returning c.table_name, c.resolution
     ), ${unpark("flow_jobs")}, ${unpark("jobs")}
     select w.*, (select resolution from ended) as ended,
            (select count(*) from flow_jobs_unparked) + (select count(*) from jobs_unparked) as unparked
     from w`,
    [jobId, attempt],
    { prepare: true },
  );
  return row && { tokenHash: row.token_hash, tableName: row.table_name, kind: row.kind, outcome: row.outcome, deadline: new Date(row.deadline), terms: row.terms, ended: row.ended };
}

/** An open approval as `GET /v1/approvals` lists it. */
export interface OpenApproval {
  id: string;
  jobId: string;
  flowId: string | null;
  key: string | null;
  owner: string;
  terms: WaitTerms;
  since: Date;
  deadline: Date;
}

/**
 * The open approvals `userName` may decide: those naming them, and their own (`userId`'s) naming
 * nobody. Newest first, at most `limit`.
 */
export async function openApprovals(db: Db, userId: string, userName: string, limit: number): Promise<OpenApproval[]> {
  const rows = await db.$client.unsafe<
    { id: string; job_id: string; flow_id: string | null; key: string | null; owner: string; terms: WaitTerms; created_at: Date; deadline: Date }[]
  >(
    `select coalesce(fj.id, jb.id) as id, c.job_id, fj.flow_id, fj.key, u.name as owner, c.terms, c.created_at, c.deadline
     from task_callbacks c
     join users u on u.id = c.user_id
     left join flow_jobs fj on c.table_name = 'flow_jobs' and fj.job_id = c.job_id
     left join jobs jb on c.table_name = 'jobs' and jb.job_id = c.job_id
     where c.kind = 'approval' and c.resolution is null and c.outcome is null and c.parked_at is not null
       and coalesce(fj.status, jb.status) = 'active'
       and ((c.user_id = $1 and c.terms->'approvers' is null) or coalesce(c.terms->'approvers', '[]'::jsonb) ? $2)
     order by c.created_at desc limit $3`,
    [userId, userName, limit],
    { prepare: true },
  );
  return rows.map((r: (typeof rows)[number]) => ({
    id: r.id,
    jobId: r.job_id,
    flowId: r.flow_id,
    key: r.key,
    owner: r.owner,
    terms: r.terms,
    since: new Date(r.created_at),
    deadline: new Date(r.deadline),
  }));
}
