/**
 * BullMQ's Postgres backend (FLOWD_QUEUE_BACKEND=postgres): its tables live in their own schema
 * (FLOWD_QUEUE_SCHEMA) of flowd's database, reached through one `pg` pool per process that every
 * Queue, FlowProducer and Worker of the process shares. No Redis connection is ever opened.
 */
import pg from "pg";
import { createPostgresBackend, runMigrations } from "bullmq";
import type { Logger } from "./log";
import { ConnectError, maskUrl } from "./errors";

export interface PgQueues {
  /** Shared by every BullMQ object of the process; each Worker holds one of its clients for LISTEN. */
  pool: pg.Pool;
  schema: string;
  close(): Promise<void>;
}

/** BullMQ's factory for its Postgres backend, passed as the last argument of Queue, Worker and FlowProducer. */
export const pgBackend = createPostgresBackend;

/**
 * Opens the pool and brings BullMQ's schema up to date (its migrations run under its own advisory
 * lock, so processes starting together apply them once). `workers`: the Workers this process will
 * run, each holding a client for LISTEN, so the pool keeps room for queries beside them.
 */
export async function openPgQueues(config: { databaseUrl: string; queueSchema: string }, log: Logger, workers = 0): Promise<PgQueues> {
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: workers + 10,
    // Every connection resolves BullMQ's unqualified names in its schema (a pool built by the caller
    // cannot carry BullMQ's `schema` option).
    options: `-c search_path=${config.queueSchema},public`,
    connectionTimeoutMillis: 5_000,
    keepAlive: true,
  });
  // Every Queue, Worker and FlowProducer on the pool adds its own error listener (a dozen or more
  // per process): that is by design here, not the leak Node's warning at 11 guesses at.
  pool.setMaxListeners(0);
  // An idle client's error (the server went away) must not crash the process: the next query reconnects.
  pool.on("error", (err) => log.warn("Postgres queue connection error", { err: err.message }));
  try {
    const client = await pool.connect();
    try {
      await runMigrations(client, config.queueSchema);
      await installKeptResults(client, config.queueSchema);
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end().catch(() => {});
    const e = err as { code?: string; message?: string };
    throw new ConnectError(`cannot prepare BullMQ's Postgres backend at ${maskUrl(config.databaseUrl)} (${e.code ?? e.message}); check DATABASE_URL`);
  }
  return { pool, schema: config.queueSchema, close: () => pool.end() };
}

/**
 * Results of children not run again (a retried tree's completed children, a graph job's
 * dependencies) ride in the job's opts (`flowd.kept` and `flowd.keptQueues`; `flowd` is META_KEY
 * in services/job-envelope.ts), since BullMQ's `job_dependency` rows need their parent's row. This
 * trigger writes those rows in the insert's own transaction, as processed children keyed
 * `<queue>:<id>` like BullMQ's, so any worker's `getChildrenValues()` (the users' own too) has them
 * before the job can be fetched: what the `processed` hash written before the add gives on Redis.
 * Installed under a lock, as processes start together.
 */
async function installKeptResults(client: pg.PoolClient, schema: string) {
  const s = quoted(schema);
  await client.query("begin");
  try {
    await client.query("select pg_advisory_xact_lock(hashtext('flowd:kept-results:' || $1))", [schema]);
    await client.query(`
      create or replace function ${s}.flowd_give_kept() returns trigger language plpgsql as $fn$
      begin
        insert into ${s}.job_dependency (parent_queue, parent_id, child_queue, child_id, child_key, status, value)
        select new.queue, new.id, q.value #>> '{}', k.key, (q.value #>> '{}') || ':' || k.key, 'processed', k.value
        from jsonb_each(new.opts -> 'flowd' -> 'kept') k
        join jsonb_each(new.opts -> 'flowd' -> 'keptQueues') q on q.key = k.key
        on conflict do nothing;
        return null;
      end
      $fn$`);
    await client.query(`drop trigger if exists flowd_give_kept on ${s}.job`);
    await client.query(
      `create trigger flowd_give_kept after insert on ${s}.job for each row when (new.opts -> 'flowd' ? 'keptQueues') execute function ${s}.flowd_give_kept()`,
    );
    await client.query("commit");
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  }
}

/** A schema name checked by the config pattern, quoted for SQL text. */
export const quoted = (schema: string) => `"${schema}"`;
