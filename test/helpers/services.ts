import { createHash } from "node:crypto";
import postgres from "postgres";
import IORedis from "ioredis";
import { migrations } from "../../src/db/migrations.generated";
import { migrate } from "../../src/db/migrate";

export const PG_BASE = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export const dbUrl = (name: string) => `${PG_BASE}/${name}`;

/** The template's name changes with the migrations, so a stale template is never cloned. */
export const TEMPLATE_DB = `flowd_tpl_${createHash("sha256").update(migrations.map((m) => `${m.tag}:${m.when}:${m.sql}`).join("\n")).digest("hex").slice(0, 12)}`;

export async function checkServices(): Promise<void> {
  const sql = postgres(dbUrl("postgres"), { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (err) {
    throw new Error(
      `Postgres does not answer at ${PG_BASE} (${(err as Error).message}). Start it, e.g. ` +
        `'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start', or set TEST_PG_URL.`,
    );
  } finally {
    await sql.end({ timeout: 1 });
  }
  const redis = new IORedis(REDIS_URL, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(
      `Redis does not answer at ${REDIS_URL} (${(err as Error).message}). Start it, e.g. ` +
        `'redis-server --daemonize yes --port 6379 --save "" --appendonly no', or set TEST_REDIS_URL.`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Creates and migrates the template database once per set of migrations; safe if two runs race. */
export async function ensureTemplate(): Promise<void> {
  const admin = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${TEMPLATE_DB}`;
    if (exists) return;
    const building = `${TEMPLATE_DB}_build_${process.pid}`;
    await admin.unsafe(`create database "${building}"`);
    const sql = postgres(dbUrl(building), { max: 1, onnotice: () => {} });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 1 });
    }
    try {
      await admin.unsafe(`alter database "${building}" rename to "${TEMPLATE_DB}"`);
    } catch {
      await admin.unsafe(`drop database if exists "${building}" with (force)`);
    }
  } finally {
    await admin.end({ timeout: 1 });
  }
}
