/**
 * How far the status recorder is behind BullMQ's event streams, and whether any process records at
 * all, read from what every process can see (Redis's streams, the cursors and the lease in
 * Postgres): the API reports it in /readyz and /metrics, and refuses creates when it is too far behind.
 */
import type { RedisClient as Redis } from "../redis";
import type { Db } from "../db/client";
import { isAdvisoryLockHeld, loadStreamCursors } from "../db/queries/status";
import { eventStreamKey, parseStreamInfo } from "./event-streams";
import { aimedSlot, cursorName, shardPrefix, type Shard } from "../shards";
import type { PgQueues } from "../pg-queues";
import { pgBacklog, pgCursorName } from "./pg-events";

/** The recorder's lease (a Postgres advisory lock key): any constant, the same for every flowd process. */
export const RECORDER_LEASE = 7244119004;
/** The first tag scheme's shard n has its recorder lease at this plus n: one recorder per shard, in parallel. */
const SHARD_RECORDER_LEASES = 7244120000;
/**
 * An aimed shard's lease is this plus its slot: apart from every key a release without aimed tags
 * could compute (that base plus any stored shard, up to 32,767), so a previous release still running
 * during an upgrade, which takes an aimed shard for a first-scheme one, never holds its lease.
 */
const AIMED_RECORDER_LEASES = 7244200000;

/** The lease of the recorder of one shard; the plain prefix keeps the lease it always had. */
export const recorderLease = (shard: Shard) => {
  if (shard === null) return RECORDER_LEASE;
  const slot = aimedSlot(shard);
  return slot === null ? SHARD_RECORDER_LEASES + shard : AIMED_RECORDER_LEASES + slot;
};

export interface StreamBacklog {
  queue: string;
  /** Null on the plain prefix (FLOWD_SHARDS=1). */
  shard: Shard;
  /** Entries the stream holds, and its cap. */
  length: number;
  /** Age of the oldest entry the recorder has not recorded yet; 0 when it is caught up. */
  lagMs: number;
}

export interface RecorderHealth {
  /** A process holds the recorder lease. */
  alive: boolean;
  lagMs: number;
  streams: StreamBacklog[];
}

/** `alive` only when every shard in `shards` (default: the plain prefix) has its recorder. */
export async function readRecorderHealth(deps: {
  db: Db;
  /** Null on the Postgres backend, with `pg` set. */
  redis: Redis | null;
  pg?: PgQueues | null;
  prefix: string;
  queues: readonly string[];
  shards?: readonly Shard[];
}): Promise<RecorderHealth> {
  const shards = deps.shards ?? [null];
  const [held, cursors] = await Promise.all([Promise.all(shards.map((s) => isAdvisoryLockHeld(deps.db, recorderLease(s)))), loadStreamCursors(deps.db)]);
  if (deps.pg || !deps.redis) {
    // One database, no shards: the events after each queue's cursor in BullMQ's event table.
    const pg = deps.pg!;
    const backlog = await pgBacklog(pg.pool, pg.schema, deps.queues.map((queue) => ({ queue, cursor: cursors.get(pgCursorName(pg.schema, queue)) ?? "0" })));
    const streams = deps.queues.map((queue) => ({ queue, shard: null, length: backlog.get(queue)?.length ?? 0, lagMs: backlog.get(queue)?.lagMs ?? 0 }));
    return { alive: held.every(Boolean), lagMs: Math.max(0, ...streams.map((s) => s.lagMs)), streams };
  }
  const redis = deps.redis;
  // One pipeline per shard: on a cluster, each shard's keys are in one slot, different shards' not.
  const perShard = await Promise.all(shards.map((shard) => shardBacklog(redis, shardPrefix(deps.prefix, shard), shard, deps.queues, cursors)));
  const streams = perShard.flat();
  return { alive: held.every(Boolean), lagMs: Math.max(0, ...streams.map((s) => s.lagMs)), streams };
}

async function shardBacklog(redis: Redis, prefix: string, shard: Shard, queues: readonly string[], cursors: Map<string, string>): Promise<StreamBacklog[]> {
  const pipeline = redis.pipeline();
  for (const queue of queues) {
    const key = eventStreamKey(prefix, queue);
    // "(" makes the start exclusive: the first entry after the cursor, i.e. the oldest unrecorded one.
    pipeline.xinfo("STREAM", key).xrange(key, `(${cursors.get(cursorName(prefix, shard, queue)) ?? "0-0"}`, "+", "COUNT", 1);
  }
  const replies = (await pipeline.exec()) ?? [];
  const now = Date.now();
  return queues.map((queue, i) => {
    const info = replies[2 * i]?.[0] ? null : parseStreamInfo(replies[2 * i]?.[1]);
    const [oldest] = ((replies[2 * i + 1]?.[1] as [string, string[]][] | null) ?? []) as [string, string[]][];
    const lagMs = oldest ? Math.max(0, now - Number(oldest[0].split("-")[0])) : 0;
    return { queue, shard, length: info?.length ?? 0, lagMs };
  });
}

/** Readiness reasons from the recorder's health: nobody records, or the oldest unrecorded event is too old. */
export function recorderShortfalls(health: RecorderHealth, maxLagMs: number): string[] {
  const out: string[] = [];
  if (!health.alive)
    out.push("No status recorder is running (nobody holds the recorder lease, or one shard's), so job statuses are not reaching Postgres; every --role=api, worker or all process runs one.");
  if (health.lagMs > maxLagMs)
    out.push(`The status recorder is ${Math.round(health.lagMs / 1000)} s behind (FLOWD_RECORDER_MAX_LAG_MS is ${maxLagMs}); new creates are refused until it catches up.`);
  return out;
}

/**
 * Re-reads the recorder's health every `everyMs`, so that a hot path (admitting a create) can look
 * at a recent figure without a query of its own.
 */
export function watchRecorder(deps: Parameters<typeof readRecorderHealth>[0], everyMs = 2_000) {
  let current: RecorderHealth | null = null;
  const refresh = () =>
    readRecorderHealth(deps).then(
      (h) => (current = h),
      () => undefined, // Postgres or Redis down: readiness says so; keep the last figure.
    );
  void refresh();
  const timer = setInterval(refresh, everyMs);
  return {
    /** The latest reading, null before the first. */
    get current() {
      return current;
    },
    read: () => readRecorderHealth(deps),
    stop: () => clearInterval(timer),
  };
}
export type RecorderWatch = ReturnType<typeof watchRecorder>;
