/**
 * Per-key limits in Postgres: the keys' settings, and the counts and held jobs a release pass reads
 * (src/scheduling/limit-release.ts). The scans repeat the partial indexes' predicates word for word
 * (see limitIndexes), since Postgres matches a partial index to a query only by its text.
 */
import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { jobs } from "../schema";
import { clientOf, type DbOrTx } from "../client";
import { LIMIT_RUNNING, TURN_KEY } from "../schema/columns";

/** A limit key's settings and scheduling state, as a release pass reads them (src/scheduling/limit-plan.ts). */
export interface KeyState {
  key: string;
  concurrency: number | null;
  rateMax: number | null;
  ratePerMs: number | null;
  rateNextMs: number | null;
  turn: number;
}

export interface HeldJob {
  tbl: "jobs" | "flow_jobs";
  id: string;
  concurrencyKeys: string[] | null;
  rateKey: string | null;
  waitingFor: string;
}

/** A key's settings as a job's opts or `PUT /v1/limits/:key` give them. */
export interface KeySettings {
  key: string;
  concurrency: number | null;
  rateMax: number | null;
  ratePerMs: number | null;
}

const TABLES = ["jobs", "flow_jobs"] as const;
const RUNNING = LIMIT_RUNNING;
const HELD = `waiting_for in ('concurrency', 'rateLimit') and status = 'pending'`;

/**
 * Serialises a user's release passes (creates, the recorder, the sweeper, `PUT /v1/limits`): a pass
 * counts running jobs and releases up to the limit, so two at once could both see the same free slot.
 * Per user, since a job names only its user's keys. Held to the transaction's end.
 */
export async function lockUserLimits(db: DbOrTx, userId: string) {
  await db.execute(sql`select pg_advisory_xact_lock(hashtextextended(${"flowd-limits:" + userId}, 0))`);
}

/** Sets the keys' limits where they have none yet: the first job to name a key sets them; PUT changes them. */
export async function ensureLimitKeys(db: DbOrTx, userId: string, settings: KeySettings[]) {
  if (settings.length === 0) return;
  const rows = settings.map((s) => ({ key: s.key, concurrency: s.concurrency, rate_max: s.rateMax, rate_per_ms: s.ratePerMs }));
  await db.execute(sql`
    insert into limit_keys (user_id, key, concurrency, rate_max, rate_per_ms)
    select ${userId}, r.key, r.concurrency, r.rate_max, r.rate_per_ms
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(key text, concurrency int, rate_max int, rate_per_ms bigint)
    on conflict (user_id, key) do update set
      concurrency = coalesce(limit_keys.concurrency, excluded.concurrency),
      rate_max = case when limit_keys.rate_max is null then excluded.rate_max else limit_keys.rate_max end,
      rate_per_ms = case when limit_keys.rate_max is null then excluded.rate_per_ms else limit_keys.rate_per_ms end
    where (limit_keys.concurrency is null and excluded.concurrency is not null)
       or (limit_keys.rate_max is null and excluded.rate_max is not null)`);
}

export interface LimitKeyRow extends KeyState {
  updatedAt: string;
}

const keyRow = (r: Record<string, unknown>): LimitKeyRow => ({
  key: r.key as string,
  concurrency: r.concurrency as number | null,
  rateMax: r.rate_max as number | null,
  ratePerMs: r.rate_per_ms === null ? null : Number(r.rate_per_ms),
  rateNextMs: r.rate_next_ms === null ? null : Number(r.rate_next_ms),
  turn: Number(r.turn),
  updatedAt: new Date(r.updated_at as string).toISOString(),
});

/** A page of a user's keys by name; `keys` narrows it to those keys. */
export async function userLimitKeys(db: DbOrTx, userId: string, opts: { keys?: string[]; after?: string; limit?: number } = {}) {
  const rows = await db.execute<Record<string, unknown>>(sql`
    select key, concurrency, rate_max, rate_per_ms, rate_next_ms, turn, updated_at from limit_keys
    where user_id = ${userId}
      ${opts.keys ? sql`and key = any(${textArray(opts.keys)})` : sql``}
      ${opts.after !== undefined ? sql`and key > ${opts.after}` : sql``}
    order by key ${opts.limit !== undefined ? sql`limit ${opts.limit}` : sql``}`);
  return rows.map(keyRow);
}

/** Replaces a key's limits (null: none of that kind); a changed rate starts afresh. */
export async function putLimitKey(db: DbOrTx, userId: string, s: KeySettings) {
  await db.execute(sql`
    insert into limit_keys (user_id, key, concurrency, rate_max, rate_per_ms)
    values (${userId}, ${s.key}, ${s.concurrency}, ${s.rateMax}, ${s.ratePerMs})
    on conflict (user_id, key) do update set concurrency = excluded.concurrency, rate_max = excluded.rate_max,
      rate_per_ms = excluded.rate_per_ms, updated_at = now(),
      rate_next_ms = case when (limit_keys.rate_max, limit_keys.rate_per_ms) is not distinct from (excluded.rate_max, excluded.rate_per_ms)
                          then limit_keys.rate_next_ms end`);
}

/** How many released, unfinished jobs each of a user's concurrency keys has (a job counts once per key it names). */
export async function runningPerKey(db: DbOrTx, userId: string): Promise<Map<string, number>> {
  const scans = TABLES.map((t) => sql`select unnest(concurrency_keys) as key from ${sql.raw(t)} where user_id = ${userId} and ${sql.raw(RUNNING)}`);
  const rows = await db.execute<{ key: string; n: number }>(sql`
    select key, count(*)::int as n from (${sql.join(scans, sql` union all `)}) x group by key`);
  return new Map(rows.map((r) => [r.key, r.n]));
}

/** Users with jobs held for a limit: the sweeper's passes. */
export async function usersWithHeldJobs(db: DbOrTx, limit = 1_000): Promise<string[]> {
  const rows = await db.execute<{ user_id: string }>(
    sql.raw(`${TABLES.map((t) => `(select distinct user_id from ${t} where ${HELD})`).join(" union ")} limit ${limit}`),
  );
  return rows.map((r) => r.user_id);
}

/** Waiting (held) and running jobs per key for /metrics, the busiest `top` keys only. */
export async function limitKeyCounts(db: DbOrTx, top: number) {
  return db.execute<{ key: string; waiting: number; running: number }>(
    sql.raw(`
    select key, sum(waiting)::int as waiting, sum(running)::int as running from (
      ${TABLES.map(
        (t) => `select ${TURN_KEY} as key, count(*) as waiting, 0 as running from ${t} where ${HELD} group by 1
         union all select unnest(concurrency_keys), 0, count(*) from ${t} where ${RUNNING} group by 1`,
      ).join(" union all ")}
    ) x group by key order by sum(waiting) + sum(running) desc, key limit ${top}`),
  );
}

/** Released single jobs not yet in Redis (no event of theirs recorded): what a pass's caller adds. */
export async function releasedJobRows(db: DbOrTx, ids: string[]) {
  return db
    .select()
    .from(jobs)
    .where(and(inArray(jobs.id, ids), isNull(jobs.waitingFor), eq(jobs.eventPos, 0), inArray(jobs.status, ["pending", "waiting", "delayed"])));
}

/** How many jobs wait (held) per turn key of a user. */
export async function heldPerKey(db: DbOrTx, userId: string): Promise<Map<string, number>> {
  const scans = TABLES.map((t) => sql`select ${sql.raw(TURN_KEY)} as key from ${sql.raw(t)} where user_id = ${userId} and ${sql.raw(HELD)}`);
  const rows = await db.execute<{ key: string; n: number }>(sql`
    select key, count(*)::int as n from (${sql.join(scans, sql` union all `)}) x group by key`);
  return new Map(rows.map((r) => [r.key, r.n]));
}

/** A text[] parameter: drizzle would spread a JS array into a row of parameters. */
const textArray = (values: string[]) => sql`array(select jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))`;

/**
 * What a release pass reads, in one statement (after the user's lock, so it sees every pass before
 * it): the database's clock, the user's keys, running jobs per key, and the first `perKey` held jobs
 * of each turn key in creation order. Fixed text, sent prepared ($1: the user): a pass runs after
 * every recorder batch that frees a slot, and parsing and planning this text each time cost more
 * than running it.
 */
const PASS_STATE = (perKey: number) => `
    with r as (select key, count(*) as n from (${TABLES.map((t) => `select unnest(concurrency_keys) as key from ${t} where user_id = $1 and ${RUNNING}`).join(" union all ")}) x group by key)
    select (extract(epoch from clock_timestamp()) * 1000)::float8 as now_ms,
      (select coalesce(jsonb_agg(k), '[]'::jsonb) from (
         select key, concurrency, rate_max, rate_per_ms, rate_next_ms, turn, updated_at from limit_keys where user_id = $1) k) as keys,
      (select coalesce(jsonb_object_agg(key, n), '{}'::jsonb) from r) as running,
      (select coalesce(jsonb_agg(c order by c.created_at, c.id), '[]'::jsonb) from (
         select c.* from limit_keys k left join r on r.key = k.key
         cross join lateral (${TABLES.map(
           (t) => `(select '${t}' as tbl, id, concurrency_keys, rate_key, waiting_for, created_at from ${t}
              where user_id = k.user_id and ${TURN_KEY} = k.key and ${HELD}
              order by created_at, id limit ${Math.floor(perKey)})`,
         ).join(" union all ")}) c
         -- A full turn key's jobs cannot go (each names it as a concurrency key, unless the key's
         -- rate limit is what holds them): not read, so a pass costs the keys with room, not every key.
         where k.user_id = $1 and (k.concurrency is null or coalesce(r.n, 0) < k.concurrency or k.rate_max is not null)) c) as held`;
const passStates = new Map<number, string>();

export async function readPassState(db: DbOrTx, userId: string, perKey: number) {
  let text = passStates.get(perKey);
  if (!text) passStates.set(perKey, (text = PASS_STATE(perKey)));
  const [row] = await clientOf(db).unsafe<{ now_ms: number; keys: Record<string, unknown>[]; running: Record<string, number>; held: Record<string, unknown>[] }[]>(
    text,
    [userId],
    { prepare: true },
  );
  return {
    nowMs: row!.now_ms,
    keys: row!.keys.map(keyRow),
    running: new Map(Object.entries(row!.running).map(([k, n]) => [k, Number(n)])),
    held: row!.held.map(
      (r): HeldJob => ({
        tbl: r.tbl as HeldJob["tbl"],
        id: r.id as string,
        concurrencyKeys: r.concurrency_keys as string[] | null,
        rateKey: r.rate_key as string | null,
        waitingFor: r.waiting_for as string,
      }),
    ),
  };
}

const qualified = (d: string) => HELD.replace(/waiting_for|status/g, `${d}.$&`);

/**
 * HELD as a check the planner cannot match to a partial index (a CASE is opaque to its proofs), for
 * rows a pass found by id: they can then only be reached by primary key. With HELD itself, a planner
 * whose statistics predate a burst (1 held row, when there are 10,000) walked every held job.
 */
const stillHeld = (d: string) => `(case when ${qualified(d)} then true else false end)`;

/**
 * What a release pass decided, in one statement: held jobs let go (both tables), reasons changed
 * for jobs left waiting, keys' turns and next start times. Fixed text, sent prepared ($1, $2: the
 * ids let go per table; $3: the reasons; $4: the keys; $5: the user, all JSON but the user). Rows
 * are found by primary key (`id = any(array)` and stillHeld), whatever the planner's statistics
 * say: as `id in (subquery)` on a table filled faster than autovacuum analyzes it, the planner
 * walked every held job per id let go (10,000 held, 100 let go: 200 ms of CPU per pass, not 5).
 */
const WRITE_PASS = `
    -- A single job let go is written where its add puts it, as a create does (see freshJobState): the
    -- recorder then has nothing to write for BullMQ's waiting; a failed add puts it back to pending.
    with rj as (update jobs set waiting_for = null, updated_at = now(),
                  status = case when coalesce((opts->>'delay')::bigint, 0) > 0 then 'delayed' else 'waiting' end,
                  ready_at = case when coalesce((opts->>'delay')::bigint, 0) > 0 then null else now() end
                where id = any(array(select jsonb_array_elements_text($1::jsonb))) and ${stillHeld("jobs")} returning id),
         rf as (update flow_jobs set waiting_for = null, updated_at = now()
                where id = any(array(select jsonb_array_elements_text($2::jsonb))) and ${stillHeld("flow_jobs")} returning id),
         why as (select * from jsonb_to_recordset($3::jsonb) as r(tbl text, id text, reason text)),
         wj as (update jobs j set waiting_for = why.reason from why
                where why.tbl = 'jobs' and j.id = why.id and j.id = any(array(select id from why where tbl = 'jobs')) and ${stillHeld("j")} returning 1),
         wf as (update flow_jobs j set waiting_for = why.reason from why
                where why.tbl = 'flow_jobs' and j.id = why.id and j.id = any(array(select id from why where tbl = 'flow_jobs')) and ${stillHeld("j")} returning 1),
         ks as (update limit_keys as k set turn = r.turn, rate_next_ms = r.rate_next_ms
                from jsonb_to_recordset($4::jsonb) as r(key text, turn bigint, rate_next_ms double precision)
                where k.user_id = $5 and k.key = r.key returning 1)
    select (select coalesce(jsonb_agg(id), '[]'::jsonb) from rj) as jobs, (select coalesce(jsonb_agg(id), '[]'::jsonb) from rf) as flow_jobs,
           (select count(*) from wj) + (select count(*) from wf) + (select count(*) from ks) as n`;

export async function writePass(
  db: DbOrTx,
  userId: string,
  pass: { release: HeldJob[]; reasons: { job: HeldJob; reason: string }[]; keys: KeyState[] },
): Promise<{ jobs: string[]; flowJobs: string[] }> {
  const ids = (tbl: string) => JSON.stringify(pass.release.filter((j) => j.tbl === tbl).map((j) => j.id));
  const reasons = JSON.stringify(pass.reasons.map((r) => ({ tbl: r.job.tbl, id: r.job.id, reason: r.reason })));
  const keys = JSON.stringify(pass.keys.map((k) => ({ key: k.key, turn: k.turn, rate_next_ms: k.rateNextMs })));
  const [row] = await clientOf(db).unsafe<{ jobs: string[]; flow_jobs: string[] }[]>(WRITE_PASS, [ids("jobs"), ids("flow_jobs"), reasons, keys, userId], {
    prepare: true,
  });
  return { jobs: row!.jobs, flowJobs: row!.flow_jobs };
}
