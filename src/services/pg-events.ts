/**
 * Reading what BullMQ's Postgres backend records, for the status recorder (FLOWD_QUEUE_BACKEND=postgres).
 *
 * BullMQ writes each event into its `event` table inside the transaction that moves the job, with
 * an id from a sequence. Ids are drawn before commit, so transactions commit out of id order: a
 * reader that pages on `id > cursor` (as BullMQ's own QueueEvents does) can pass an id whose
 * transaction has not committed yet, and never see it. This reader pages on the inserting
 * transaction's id instead (the row's `xmin`, widened to 64 bits), and only up to the oldest
 * transaction of this database still running (HORIZON): every event below that horizon is committed or
 * gone for good, so the order (transaction, event id) over them never changes and the cursor
 * `<xid>-<id>` never skips one. The price: a transaction that stays open holds reading back for
 * as long as it stays open.
 *
 * Nothing is trimmed before it is read: flowd's queues tell BullMQ to keep every event (maxLenEvents
 * 0), and `trimRecorded` deletes only events behind a cursor committed in `stream_cursors`.
 */
import type pg from "pg";
import { quoted } from "../pg-queues";

/** Where a queue's read position is stored (stream_cursors.queue): apart from every Redis stream's name. */
export const pgCursorName = (schema: string, queue: string) => `${schema}.${queue}`;

export interface PgEvent {
  queue: string;
  /** `<created ms>-<event id>`: the time the recorder reads like a Redis entry id's, ordered for the row guard. */
  id: string;
  /** The entry's fields, flat as XREAD gives them. */
  flat: string[];
  /** The read position just past this event: `<xid>-<event id>`. */
  cursor: string;
}

const parseCursor = (cursor: string): [string, string] => {
  const [xid = "0", id = "0"] = cursor.split("-");
  return [/^\d+$/.test(xid) ? xid : "0", /^\d+$/.test(id) ? id : "0"];
};

/** The inserting transaction's 64-bit id of an event row, in a statement where `h` holds the snapshot's bounds. */
const FULL_XID = `(case when ((h.xmax8 >> 32) << 32) + e.xmin::text::bigint >= h.xmax8
                    then ((h.xmax8 >> 32) << 32) + e.xmin::text::bigint - 4294967296
                    else ((h.xmax8 >> 32) << 32) + e.xmin::text::bigint end)`;

/**
 * `h.xmin8`: the oldest transaction that may still add events here. Xids are the whole server's, so
 * the snapshot's running transactions include other databases': those still running in another
 * database (pg_stat_activity, read after the snapshot) cannot write this one's tables and do not
 * hold reading back. One that ended in between, or whose database cannot be seen (another role's
 * session, without pg_read_all_stats), counts as this database's: reading waits, never skips.
 */
const HORIZON = `snap as (select pg_current_snapshot() as s),
     elsewhere as (select backend_xid::text::bigint as x32 from pg_stat_activity
                    where backend_xid is not null and datname is distinct from current_database()),
     h as (select coalesce((select min(x::text::bigint) from pg_snapshot_xip(snap.s) x
                             where (x::text::bigint & 4294967295) not in (select x32 from elsewhere)),
                           pg_snapshot_xmax(snap.s)::text::bigint) as xmin8,
                  pg_snapshot_xmax(snap.s)::text::bigint as xmax8
             from snap)`;

/** Up to `limit` events after each queue's cursor, oldest transaction first. */
export async function readPgEvents(pool: pg.Pool, schema: string, cursors: { queue: string; cursor: string }[], limit: number): Promise<PgEvent[]> {
  const c = cursors.map(({ queue, cursor }) => {
    const [xid, id] = parseCursor(cursor);
    return { queue, xid, id };
  });
  const { rows } = await pool.query<{ queue: string; id: string; event: string; data: Record<string, unknown> | null; created_at_ms: string; xid: string }>(
    `with ${HORIZON},
     c as (select * from jsonb_to_recordset($1::jsonb) as c(queue text, xid bigint, id bigint))
     select e.queue, e.id::text, e.event, e.data, e.created_at_ms::text, x.xid::text
       from c join ${quoted(schema)}.event e on e.queue = c.queue
       cross join h
       cross join lateral (select ${FULL_XID} as xid) x
      where x.xid < h.xmin8 and (x.xid, e.id) > (c.xid, c.id)
      order by x.xid, e.id
      limit $2`,
    [JSON.stringify(c), limit],
  );
  return rows.map((r) => {
    const flat = ["event", r.event];
    for (const [k, v] of Object.entries(r.data ?? {})) flat.push(k, typeof v === "string" ? v : JSON.stringify(v));
    return { queue: r.queue, id: `${r.created_at_ms}-${r.id}`, flat, cursor: `${r.xid}-${r.id}` };
  });
}

/** Per queue, the age of the oldest event after its cursor (0 when there is none), for the recorder's health. */
export async function pgBacklog(pool: pg.Pool, schema: string, cursors: { queue: string; cursor: string }[]): Promise<Map<string, { lagMs: number; length: number }>> {
  const c = cursors.map(({ queue, cursor }) => {
    const [xid, id] = parseCursor(cursor);
    return { queue, xid, id };
  });
  const { rows } = await pool.query<{ queue: string; oldest: string | null; length: string }>(
    `with ${HORIZON},
     c as (select * from jsonb_to_recordset($1::jsonb) as c(queue text, xid bigint, id bigint))
     select c.queue, min(e.created_at_ms) filter (where (x.xid, e.id) > (c.xid, c.id))::text as oldest, count(e.id)::text as length
       from c cross join h
       left join ${quoted(schema)}.event e on e.queue = c.queue
       left join lateral (select ${FULL_XID} as xid) x on true
      group by c.queue`,
    [JSON.stringify(c)],
  );
  const now = Date.now();
  return new Map(rows.map((r) => [r.queue, { lagMs: r.oldest === null ? 0 : Math.max(0, now - Number(r.oldest)), length: Number(r.length) }]));
}

/**
 * Deletes events of these queues that a committed cursor has passed and that are older than
 * `keepMs` (users' own QueueEvents on an external queue may still be reading them).
 */
export async function trimRecorded(pool: pg.Pool, schema: string, queues: readonly string[], keepMs: number): Promise<number> {
  const { rowCount } = await pool.query(
    `with ${HORIZON}
     delete from ${quoted(schema)}.event e
      using stream_cursors sc, h
      where e.queue = any($1::text[]) and sc.queue = $2 || '.' || e.queue
        and e.created_at_ms < $3
        and (${FULL_XID}, e.id) <= (split_part(sc.last_id, '-', 1)::bigint, split_part(sc.last_id, '-', 2)::bigint)`,
    [queues, schema, Date.now() - keepMs],
  );
  return rowCount ?? 0;
}

/**
 * Tells BullMQ to keep every event of these queues (a Queue opened elsewhere with its default would
 * have it trim to 10,000). Answers the queues that had another setting: events may have been
 * trimmed before they were read there.
 */
export async function keepAllEvents(pool: pg.Pool, schema: string, queues: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ queue: string; value: string | null }>(
    `select q as queue, m.value from unnest($1::text[]) q left join ${quoted(schema)}.meta m on m.queue = q and m.field = 'opts.maxLenEvents'`,
    [queues],
  );
  const wrong = rows.filter((r) => r.value !== "0").map((r) => r.queue);
  if (wrong.length > 0)
    await pool.query(
      `insert into ${quoted(schema)}.meta (queue, field, value) select q, 'opts.maxLenEvents', '0' from unnest($1::text[]) q
       on conflict (queue, field) do update set value = '0'`,
      [wrong],
    );
  return rows.filter((r) => r.value !== null && r.value !== "0").map((r) => r.queue);
}

/** What Redis keeps on a job's hash that a failure's event leaves out (`atm`, `stacktrace`, `name`, `opts`), as strings. */
export async function pgFailureDetails(pool: pg.Pool, schema: string, jobs: { queue: string; jobId: string }[]): Promise<(string | null)[][]> {
  const { rows } = await pool.query<{ queue: string; id: string; attempts_made: number; stacktrace: unknown; name: string; opts: unknown }>(
    `select j.queue, j.id, j.attempts_made, j.stacktrace, j.name, j.opts
       from ${quoted(schema)}.job j join jsonb_to_recordset($1::jsonb) as k(queue text, "jobId" text) on j.queue = k.queue and j.id = k."jobId"`,
    [JSON.stringify(jobs)],
  );
  const byKey = new Map(rows.map((r) => [`${r.queue}\0${r.id}`, r]));
  return jobs.map(({ queue, jobId }) => {
    const r = byKey.get(`${queue}\0${jobId}`);
    if (!r) return [];
    return [String(r.attempts_made), r.stacktrace == null ? null : JSON.stringify(r.stacktrace), r.name, r.opts == null ? null : JSON.stringify(r.opts)];
  });
}

/**
 * Waits up to `ms` for BullMQ's doorbell (`bullmq_events`, rung by commits that add events), on a
 * client of its own that stays listening. A lost ring costs `ms`, never an event.
 */
export function createPgDoorbell(pool: pg.Pool) {
  let client: pg.PoolClient | null = null;
  let connecting: Promise<pg.PoolClient> | null = null;
  let rang = false;
  const waiters = new Set<() => void>();
  const ring = () => {
    rang = true;
    for (const w of waiters) w();
  };
  const connect = () =>
    (connecting ??= (async () => {
      const c = await pool.connect();
      c.on("notification", ring);
      // A dead connection is dropped; the next wait opens another.
      c.on("error", () => {
        if (client === c) client = null;
        c.release(true);
      });
      await c.query("LISTEN bullmq_events");
      client = c;
      return c;
    })().finally(() => (connecting = null)));
  return {
    async wait(ms: number): Promise<void> {
      if (!client) await connect().catch(() => {});
      if (rang) {
        rang = false;
        return;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        waiters.add(done);
      });
      rang = false;
    },
    close() {
      for (const w of waiters) w();
      if (client) {
        client.release(true);
        client = null;
      }
    },
  };
}
