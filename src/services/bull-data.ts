/**
 * The few reads and writes of BullMQ's own data that BullMQ has no method for, on either backend:
 * Redis keys and Lua, or the rows of BullMQ's Postgres backend (its schema, FLOWD_QUEUE_SCHEMA).
 */
import { bullKey, type Producer } from "../queues";
import { quoted } from "../pg-queues";
import type { Shard } from "../shards";

/** How BullMQ names a job to its parent: `prefix:queue:id` on Redis, `queue:id` on Postgres (no prefix there). */
export const jobKeyOf = (producer: Producer, shard: Shard, queue: string, jobId: string) =>
  producer.pg ? `${queue}:${jobId}` : bullKey(producer.at(shard).prefix, queue, jobId);

/** The lock token of the attempt running a job; null when no worker holds it. */
export async function lockTokenOf(producer: Producer, shard: Shard, queue: string, jobId: string): Promise<string | null> {
  if (producer.pg) {
    const { rows } = await producer.pg.pool.query<{ lock_token: string | null }>(
      `select lock_token from ${quoted(producer.pg.schema)}.job
        where queue = $1 and id = $2 and state = 'active' and locked_until_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint`,
      [queue, jobId],
    );
    return rows[0]?.lock_token ?? null;
  }
  return producer.redis.get(bullKey(producer.at(shard).prefix, queue, jobId, "lock"));
}

/** BullMQ's count of a job's attempts made (`atm`); 0 for a job it no longer holds. */
export async function attemptsOf(producer: Producer, shard: Shard, queue: string, jobId: string): Promise<number> {
  if (producer.pg) {
    const { rows } = await producer.pg.pool.query<{ attempts_made: number }>(`select attempts_made from ${quoted(producer.pg.schema)}.job where queue = $1 and id = $2`, [queue, jobId]);
    return rows[0]?.attempts_made ?? 0;
  }
  return Number((await producer.redis.hget(bullKey(producer.at(shard).prefix, queue, jobId), "atm")) ?? 0);
}

/** Per job: whether BullMQ still holds it, and the key of the parent it points at. */
export async function liveJobs(producer: Producer, shard: Shard, jobs: { queue: string; jobId: string }[]): Promise<{ exists: boolean; parentKey: string | null }[]> {
  if (producer.pg) {
    const { rows } = await producer.pg.pool.query<{ queue: string; id: string; parent_key: string | null }>(
      `select j.queue, j.id, j.parent_key from ${quoted(producer.pg.schema)}.job j
         join jsonb_to_recordset($1::jsonb) as k(queue text, "jobId" text) on j.queue = k.queue and j.id = k."jobId"`,
      [JSON.stringify(jobs)],
    );
    const found = new Map(rows.map((r) => [`${r.queue}\0${r.id}`, r.parent_key]));
    return jobs.map((j) => ({ exists: found.has(`${j.queue}\0${j.jobId}`), parentKey: found.get(`${j.queue}\0${j.jobId}`) ?? null }));
  }
  const { prefix } = producer.at(shard);
  const replies = await producer.redis.pipeline(jobs.flatMap((j) => [["exists", bullKey(prefix, j.queue, j.jobId)], ["hget", bullKey(prefix, j.queue, j.jobId), "parentKey"]])).exec();
  return jobs.map((_, i) => {
    const [existsErr, exists] = replies?.[2 * i] ?? [new Error("no reply")];
    if (existsErr) throw existsErr;
    const previous = replies?.[2 * i + 1]?.[1];
    return { exists: Number(exists) === 1, parentKey: typeof previous === "string" ? previous : null };
  });
}

/** Per tie: whether the child has failed, and whether the parent still counts it among its dependencies. */
export async function failedTies(
  producer: Producer,
  shard: Shard,
  ties: { child: { queue: string; jobId: string }; parent: { queue: string; jobId: string } }[],
): Promise<{ failed: boolean; pending: boolean }[]> {
  if (producer.pg) {
    const s = quoted(producer.pg.schema);
    const { rows } = await producer.pg.pool.query<{ failed: boolean; pending: boolean }>(
      `select coalesce((select c.state = 'failed' from ${s}.job c where c.queue = t.cq and c.id = t.ci), false) as failed,
              exists (select 1 from ${s}.job_dependency d where d.parent_queue = t.pq and d.parent_id = t.pi
                        and d.child_queue = t.cq and d.child_id = t.ci and d.status = 'pending') as pending
         from jsonb_to_recordset($1::jsonb) with ordinality as t(cq text, ci text, pq text, pi text, n bigint) order by n`,
      [JSON.stringify(ties.map((t) => ({ cq: t.child.queue, ci: t.child.jobId, pq: t.parent.queue, pi: t.parent.jobId })))],
    );
    return rows;
  }
  const { prefix } = producer.at(shard);
  const replies = await producer.redis
    .pipeline(
      ties.flatMap(({ child, parent }) => [
        ["zscore", bullKey(prefix, child.queue, "failed"), child.jobId],
        ["sismember", `${bullKey(prefix, parent.queue, parent.jobId)}:dependencies`, bullKey(prefix, child.queue, child.jobId)],
      ]),
    )
    .exec();
  return ties.map((_, i) => ({
    failed: replies?.[2 * i]?.[1] !== null && replies?.[2 * i]?.[1] !== undefined,
    pending: Number(replies?.[2 * i + 1]?.[1]) === 1,
  }));
}

/**
 * HSET only on a job hash that still exists: a parent removed meanwhile (a cancel, a delete) must not
 * come back as a hash holding one field, which nothing would ever expire.
 */
const SET_IF_PRESENT = `if redis.call("exists", KEYS[1]) == 1 then return redis.call("hset", KEYS[1], ARGV[1], ARGV[2]) end return -1`;

/** Marks a job to fail with `reason` when a worker next picks it up (BullMQ's deferred failure), if BullMQ still holds it. */
export async function deferFailure(producer: Producer, shard: Shard, queue: string, jobId: string, reason: string): Promise<void> {
  if (producer.pg) {
    await producer.pg.pool.query(`update ${quoted(producer.pg.schema)}.job set deferred_failure = $3 where queue = $1 and id = $2`, [queue, jobId, reason]);
    return;
  }
  await producer.redis.eval(SET_IF_PRESENT, 1, bullKey(producer.at(shard).prefix, queue, jobId), "defa", reason);
}

/**
 * Takes a job that is still waiting into `active` under a lock of our own, in one step: a worker
 * that took it first wins, and this answers false (see expiry.ts).
 */
const CLAIM_WAITING = `
  if redis.call("EXISTS", KEYS[5]) == 0 then return 0 end
  local taken = redis.call("LREM", KEYS[1], 1, ARGV[1])
  if taken == 0 then taken = redis.call("ZREM", KEYS[3], ARGV[1]) end
  if taken == 0 then taken = redis.call("LREM", KEYS[4], 1, ARGV[1]) end
  if taken == 0 then return 0 end
  redis.call("LPUSH", KEYS[2], ARGV[1])
  redis.call("SET", KEYS[6], ARGV[2], "PX", ARGV[3])
  return 1`;

export async function claimWaiting(producer: Producer, shard: Shard, queue: string, jobId: string, token: string, lockMs: number): Promise<boolean> {
  if (producer.pg) {
    // A waiting row (paused is a queue flag there, prioritized a waiting row with a priority).
    const { rowCount } = await producer.pg.pool.query(
      `update ${quoted(producer.pg.schema)}.job
          set state = 'active', lock_token = $3, locked_until_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint + $4
        where queue = $1 and id = $2 and state = 'waiting'`,
      [queue, jobId, token, lockMs],
    );
    return rowCount === 1;
  }
  const key = (...parts: string[]) => bullKey(producer.at(shard).prefix, queue, ...parts);
  const claimed = await producer.redis.eval(CLAIM_WAITING, 6, key("wait"), key("active"), key("prioritized"), key("paused"), key(jobId), key(jobId, "lock"), jobId, token, lockMs);
  return claimed === 1;
}

/** When a delayed job is due (ms); null when BullMQ does not hold it delayed. */
export async function delayedUntil(producer: Producer, shard: Shard, queue: string, jobId: string): Promise<number | null> {
  if (producer.pg) {
    const { rows } = await producer.pg.pool.query<{ process_at_ms: string | null }>(
      `select process_at_ms::text from ${quoted(producer.pg.schema)}.job where queue = $1 and id = $2 and state = 'delayed'`,
      [queue, jobId],
    );
    return rows[0]?.process_at_ms == null ? null : Number(rows[0].process_at_ms);
  }
  // The delayed set's score is the due time shifted left 12 bits (BullMQ's own ordering within a millisecond).
  const score = await producer.redis.zscore(bullKey(producer.at(shard).prefix, queue, "delayed"), jobId);
  return score === null ? null : Number(score) / 0x1000;
}
