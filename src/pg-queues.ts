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

/** A schema name checked by the config pattern, quoted for SQL text. */
export const quoted = (schema: string) => `"${schema}"`;
