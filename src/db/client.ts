import postgres, { type Sql } from "postgres";
import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import * as schema from "./schema";
import { ConnectError, maskUrl } from "../errors";

/** `$client` is the postgres.js pool underneath, for the few statements drizzle cannot prepare. */
export type Db = PostgresJsDatabase<typeof schema> & { $client: Sql };
/** A Drizzle transaction: query functions accept either. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type DbOrTx = Db | Tx;

export interface Database {
  db: Db;
  sql: Sql;
  url: string;
  close(): Promise<void>;
}

export function createDb(url: string, opts: { max?: number } = {}): Database {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: () => {},
  });
  return { db: drizzle(sql, { schema }), sql, url, close: () => sql.end({ timeout: 5 }) };
}

/**
 * The postgres.js connection under a drizzle database or transaction, for fixed statements sent
 * prepared (`unsafe(text, params, { prepare: true })`): drizzle sends each `execute` unprepared, so
 * Postgres parses and plans it every time — most of a small statement's cost when its text is long.
 */
export function clientOf(db: DbOrTx): Sql {
  return (db as unknown as { session: { client: Sql } }).session.client;
}

/**
 * Postgres' error code, whether postgres.js threw the error itself or drizzle wrapped it (its
 * DrizzleQueryError keeps the driver's error as `cause`): callers check codes either way.
 */
export function postgresCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } } | null | undefined;
  return e?.code ?? e?.cause?.code;
}


const describeCause = (err: unknown) => {
  const e = err as { code?: string; message?: string; errors?: { message?: string }[] };
  return e?.code ?? e?.errors?.[0]?.message ?? e?.message ?? String(err);
};

/** Connects once; creates the database when it does not exist (the default URL names one that may not). */
export async function ensureDatabase(url: string): Promise<void> {
  const probe = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await probe`select 1`;
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== "3D000")
      throw new ConnectError(`cannot reach Postgres at ${maskUrl(url)} (${describeCause(err)}); start it or set DATABASE_URL`);
  } finally {
    await probe.end({ timeout: 1 }).catch(() => {});
  }
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  target.pathname = "/postgres";
  const admin = postgres(target.toString(), { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name.replaceAll('"', '""')}"`);
  } catch (err) {
    // Another process starting at the same moment may have created it first: Postgres says so
    // with 42P04, or with 23505 when both reached the catalog at once.
    const code = (err as { code?: string }).code;
    if (code !== "42P04" && code !== "23505")
      throw new ConnectError(`cannot create database "${name}" at ${maskUrl(url)} (${describeCause(err)})`);
  } finally {
    await admin.end({ timeout: 1 }).catch(() => {});
  }
}
