/** What every system in `bench peers` offers the runner: the same four workloads, each on its own terms. */
import IORedis from "ioredis";
import postgres from "postgres";
import { dropDatabase } from "../../test/helpers/db";
import { dbUrl, REDIS_URL } from "../../test/helpers/services";
import type { Sizes } from "./args";

export interface Session {
  /** Jobs this session has seen completed, by the system's own completion signal or store. */
  completed(): Promise<number>;
  /** How often `completed()` is worth asking: an in-process counter costs nothing, a SQL count does. */
  pollMs: number;
  /** Creates `count` jobs in one batch (the system's bulk add). */
  createBatch(count: number, round: number): Promise<void>;
  /** Creates one job (what a client of the system does per request). */
  createOne(i: number): Promise<void>;
  /** Creates one flow of `size` jobs (a root over size - 1 children) and resolves when it completed; absent without graphs. */
  flow?(size: number): Promise<void>;
  /** Creates one job and resolves, in ms, when a client sees it completed. */
  roundTrip(i: number): Promise<number>;
  /**
   * The processes doing this system's work besides the bench's own: its server processes, the
   * Postgres backends connected to its database, the shared Redis server if it uses Redis.
   */
  processes(): Promise<number[]>;
  stop(): Promise<void>;
}

export interface Peer {
  key: string;
  label: string;
  /** The settings used, as the output states them. */
  settings: string;
  start(sizes: Sizes): Promise<Session>;
}

let counter = 0;

/** An empty database of a peer's own (dropped by `drop()`), on the same server flowd uses. */
export async function peerDatabase(tag: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `peers_${tag}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const admin = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 1 });
  }
  return { name, url: dbUrl(name), drop: () => dropDatabase(name) };
}

/** Resolves when `check` holds, polling every `everyMs`; throws after `ms` naming what it waited for. */
export async function until(check: () => Promise<boolean> | boolean, what: string, everyMs: number, ms = 300_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench peers: timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

/** A promise per awaited id, settled by whoever sees the completion first (an event may beat the create's reply). */
export function completionWaits<K>() {
  const seen = new Map<K, number>();
  const waiting = new Map<K, (at: number) => void>();
  return {
    /** Called by the completion signal, with the time it arrived. */
    arrived(key: K, at = performance.now()) {
      const w = waiting.get(key);
      if (w) {
        waiting.delete(key);
        w(at);
      } else seen.set(key, at);
    },
    /** The arrival time of `key`'s completion, now or when it comes. */
    wait(key: K, ms = 30_000): Promise<number> {
      const at = seen.get(key);
      if (at !== undefined) {
        seen.delete(key);
        return Promise.resolve(at);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(key);
          reject(new Error(`bench peers: no completion of ${String(key)} within ${ms} ms`));
        }, ms);
        waiting.set(key, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
  };
}

/** Builds a session on a database of its own, dropping the database if building fails half-way. */
export async function onOwnDatabase<T>(tag: string, build: (db: Awaited<ReturnType<typeof peerDatabase>>) => Promise<T>): Promise<T> {
  const db = await peerDatabase(tag);
  try {
    return await build(db);
  } catch (err) {
    await db.drop().catch(() => {});
    throw err;
  }
}

/** The Postgres backends connected to database `name` now (a pool's connections, a LISTEN client). */
export async function backendPids(name: string): Promise<number[]> {
  const admin = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  try {
    return (await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${name}`).map((r) => r.pid);
  } finally {
    await admin.end({ timeout: 1 });
  }
}

/** The pid of the Redis server every Redis-backed system here shares (others' tests use it too). */
export async function redisServerPid(): Promise<number> {
  const redis = new IORedis(REDIS_URL);
  try {
    return Number(/process_id:(\d+)/.exec(await redis.info("server"))![1]);
  } finally {
    redis.disconnect();
  }
}
