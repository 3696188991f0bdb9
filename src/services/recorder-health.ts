/**
 * How far the status recorder is behind BullMQ's event streams, and whether any process records at
 * all, read from what every process can see (Redis's streams, the cursors and the lease in
 * Postgres): the API reports it in /readyz and /metrics, and refuses creates when it is too far behind.
 */
import type { Redis } from "ioredis";
import type { Db } from "../db/client";
import { isAdvisoryLockHeld, loadStreamCursors } from "../db/queries/status";
import { eventStreamKey, parseStreamInfo } from "./event-streams";

/** The recorder's lease (a Postgres advisory lock key): any constant, the same for every flowd process. */
export const RECORDER_LEASE = 7244119004;

export interface StreamBacklog {
  queue: string;
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

export async function readRecorderHealth(deps: { db: Db; redis: Redis; prefix: string; queues: readonly string[] }): Promise<RecorderHealth> {
  const [alive, cursors] = await Promise.all([isAdvisoryLockHeld(deps.db, RECORDER_LEASE), loadStreamCursors(deps.db)]);
  const pipeline = deps.redis.pipeline();
  for (const queue of deps.queues) {
    const key = eventStreamKey(deps.prefix, queue);
    // "(" makes the start exclusive: the first entry after the cursor, i.e. the oldest unrecorded one.
    pipeline.xinfo("STREAM", key).xrange(key, `(${cursors.get(queue) ?? "0-0"}`, "+", "COUNT", 1);
  }
  const replies = (await pipeline.exec()) ?? [];
  const now = Date.now();
  const streams = deps.queues.map((queue, i) => {
    const info = replies[2 * i]?.[0] ? null : parseStreamInfo(replies[2 * i]?.[1]);
    const [oldest] = ((replies[2 * i + 1]?.[1] as [string, string[]][] | null) ?? []) as [string, string[]][];
    const lagMs = oldest ? Math.max(0, now - Number(oldest[0].split("-")[0])) : 0;
    return { queue, length: info?.length ?? 0, lagMs };
  });
  return { alive, lagMs: Math.max(0, ...streams.map((s) => s.lagMs)), streams };
}

/** Readiness reasons from the recorder's health: nobody records, or the oldest unrecorded event is too old. */
export function recorderShortfalls(health: RecorderHealth, maxLagMs: number): string[] {
  const out: string[] = [];
  if (!health.alive)
    out.push("No status recorder is running (nobody holds the recorder lease), so job statuses are not reaching Postgres; every --role=api, worker or all process runs one.");
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
