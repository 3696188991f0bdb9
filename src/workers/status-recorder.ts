import type { RedisClient as Redis } from "../redis";
import type { Db } from "../db/client";
import { recordStatusBatch, loadStreamCursors, type StatusChange, type TableChange, type TrackedTable } from "../db/queries/status";
import type { Logger } from "../log";
import { collapse, failedByChild, toStatusChange, withAttempts, type StreamEvent } from "../services/status";
import { carriedAttempts } from "../services/job-envelope";
import { toProgress } from "../services/progress-events";
import { recordProgress } from "../db/queries/job-reports";
import type { Lease } from "./lease";
import { bullKey } from "../queues";
import { convergeQueue } from "../services/converge";
import { createGapCheck, eventStreamKey, parseStreamInfo, type StreamInfo } from "../services/event-streams";
import { withTimeout } from "../timeout";
import { cursorName, type Shard } from "../shards";

type ProgressReport = NonNullable<ReturnType<typeof toProgress>>;

export interface RecorderStats {
  batches: number;
  events: number;
  rowsChanged: number;
  lastBatchSize: number;
  /** From the newest event of the last batch entering Redis to its batch committed in Postgres. */
  lastLagMs: number;
  /** Times a stream was found trimmed (or lost) past the recorder's position. */
  gaps: number;
  /** Rows changed by converging from Redis's job states after a gap. */
  rowsConverged: number;
}

interface Gap {
  key: string;
  cursor: string;
  upTo: string;
  /** The stream's snapshot; null when the stream is gone. */
  info: StreamInfo | null;
}

/**
 * Where events come from when they are not Redis streams (BullMQ's Postgres backend: see
 * src/services/pg-events.ts). What is read becomes statuses exactly as stream entries do; only
 * reading, waiting and the cursors differ. Such a source never loses an event before it is read, so
 * it reports no gaps.
 */
export interface EventSource {
  /** Where a queue's read position is stored (stream_cursors.queue). */
  cursorName(queue: string): string;
  /** Up to `limit` entries after the cursors, XREAD-shaped by stream key, and each key's position past them. */
  read(
    cursors: { key: string; queue: string; cursor: string }[],
    limit: number,
  ): Promise<{ entries: [string, [string, string[]][]][] | null; cursors: Map<string, string> }>;
  /** Resolves when new entries may be there, or after `ms`. */
  wait(ms: number): Promise<void>;
  /** Per job, what a failure's entry leaves out: [attempts made, stack trace (JSON), name, opts (JSON)]. */
  failureDetails(jobs: { queue: string; jobId: string }[]): Promise<(string | null)[][]>;
}

const BATCH = 1000;
/**
 * Every Postgres and Redis call of the recorder is bounded: a driver call that never settles (seen
 * after a backend was terminated mid-query) would otherwise hold the lease with no progress.
 */
const DB_TIMEOUT_MS = 30_000;
const REDIS_TIMEOUT_MS = 10_000;
/** Longest a read position goes unstored while events need no write (a steady stream of `drained`). */
const SAVE_POSITION_MS = 5_000;
/**
 * Under load (a batch of at least BUSY_BATCH events), the next read waits until this long after the
 * last write began, so batches grow instead of each costing a commit, its trigger, a doorbell and
 * the readers that doorbell wakes. A job alone is never held: small batches read on at once.
 */
const BUSY_BATCH = 16;
const BUSY_GAP_MS = 10;

/**
 * Follows every queue's BullMQ event stream and writes the changes to Postgres, one transaction per
 * batch together with the stream cursors — so a crash re-reads at most one batch, and the guard
 * in the update makes re-reading harmless. A batch that cannot be written is retried, in order,
 * until Postgres answers; nothing is skipped. With a `lease`, only the process holding it records
 * (the others stand by): the streams are the same for every process, so one reader is enough.
 */
export function startStatusRecorder(deps: {
  db: Db;
  /** Unused when `source` is given. */
  redis: Redis;
  /** Events from elsewhere than the Redis streams (the Postgres backend); unset: Redis. */
  source?: EventSource;
  prefix: string;
  /** `both`: an external queue, where flow jobs and single jobs share one stream. */
  queues: { name: string; table: TrackedTable | "both" }[];
  log: Logger;
  lease?: Lease;
  /** The shard `prefix` is the key prefix of (src/shards.ts); null: the plain FLOWD_PREFIX. */
  shard?: Shard;
  /**
   * A job BullMQ failed because a child failed, read from the stream: no worker ran it, so no
   * processor saw the failure (`handler` is the job's name).
   */
  onFailedByChild?: (queue: string, handler: string) => void;
  /** Adds graph jobs a committed batch released to Redis (src/scheduling/release.ts). */
  release?: (rowIds: string[]) => Promise<void>;
  /** Runs release passes for users whose limited jobs a committed batch finished (src/scheduling/limit-release.ts). */
  releaseLimits?: (userIds: string[]) => Promise<void>;
}) {
  const shard = deps.shard ?? null;
  const log = deps.log.child({ component: "status-recorder", ...(shard === null ? {} : { shard }) });
  // Where each queue's read position is stored: by queue name on the plain prefix, by shard too on a shard.
  const cursorOf = (queue: string) => deps.source?.cursorName(queue) ?? cursorName(deps.prefix, shard, queue);
  const keyOf = (queue: string) => eventStreamKey(deps.prefix, queue);
  const tableOf = new Map(deps.queues.map((q) => [keyOf(q.name), q]));
  const stats: RecorderStats = { batches: 0, events: 0, rowsChanged: 0, lastBatchSize: 0, lastLagMs: 0, gaps: 0, rowsConverged: 0 };
  let running = true;
  // On stop, read on without blocking until the streams are empty: what this process's workers
  // did last is in Postgres before it exits.
  let draining = false;
  // Streams found missing and converged already: converging again finds nothing new until one exists.
  const convergedWhileMissing = new Set<string>();
  const gapCheck = createGapCheck();

  // Stream positions read but not yet stored. A batch without a status change (BullMQ's `drained`
  // follows nearly every completion) costs no commit: its position is stored with the next write,
  // and re-reading such events after a crash changes nothing.
  const unsaved = new Map<string, string>();
  let savedAt = 0;
  const save = async (changes: TableChange[], progress: ProgressReport[] = []) => {
    const written = await retry(() => write(deps.db, changes, new Map(unsaved), progress), () => running, log, "write job statuses");
    if (written !== undefined) {
      unsaved.clear();
      savedAt = Date.now();
      if (written.released.length > 0) queueRelease(written.released);
      if (written.limitUsers.length > 0) await releaseLimits(written.limitUsers);
    }
    return written?.changed;
  };
  // Graph jobs the batch released go into Redis now; one that does not (Redis slow, this process
  // gone) is a `pending` row without a hold, which the enqueuer adds.
  const release = (ids: string[]) =>
    withTimeout(deps.release?.(ids) ?? Promise.resolve(), REDIS_TIMEOUT_MS, "add released graph jobs").catch((err) =>
      log.warn("released graph jobs not yet in Redis; the enqueuer will add them", { count: ids.length, err: String(err) }),
    );

  // The adds run beside the recording, one at a time, each taking every id released since the last
  // began: the next batch is read and written while Redis takes the previous one's jobs. Stopping
  // waits for them (see stop).
  const toRelease: string[] = [];
  let releasing: Promise<void> | null = null;
  const queueRelease = (ids: string[]) => {
    toRelease.push(...ids);
    releasing ??= (async () => {
      while (toRelease.length > 0) await release(toRelease.splice(0));
      releasing = null;
    })();
  };

  // A pass that fails here is the sweeper's to repeat (within a second): the finished rows are committed.
  const releaseLimits = (userIds: string[]) =>
    withTimeout(deps.releaseLimits?.(userIds) ?? Promise.resolve(), REDIS_TIMEOUT_MS, "release jobs held for limits").catch((err) =>
      log.warn("could not release jobs held for limits; the sweeper will", { count: userIds.length, err: String(err) }),
    );

  const leading = () => deps.lease?.held ?? true;
  const loop = (async () => {
    while (running) {
      if (!leading()) {
        if (draining) break; // a standby has nothing of its own to drain
        await deps.lease!.whenHeld(1_000);
        continue;
      }
      // On taking over, start where the last leader stored its cursors.
      const stored = await retry(() => loadStreamCursors(deps.db), () => running, log, "load stream cursors");
      unsaved.clear();
      gapCheck.forget();
      await follow(new Map(deps.queues.map((q) => [keyOf(q.name), stored?.get(cursorOf(q.name)) ?? "0"])));
      if (draining) break;
    }
  })();

  /** Reads and records the streams while this process leads. */
  async function follow(ids: Map<string, string>) {
    let busySince = 0;
    while (running && leading()) {
      const wait = busySince + BUSY_GAP_MS - performance.now();
      if (wait > 0 && !draining) await Bun.sleep(wait);
      busySince = 0;
      let read: Awaited<ReturnType<typeof readAfter>> & { cursors?: Map<string, string> };
      try {
        read = await withTimeout(deps.source ? readSource(deps.source, ids) : readAfter(ids), REDIS_TIMEOUT_MS, "read BullMQ events");
      } catch (err) {
        if (!running) break;
        log.warn("cannot read BullMQ events; retrying", { err: String(err) });
        await Bun.sleep(500);
        continue;
      }
      if (read.gaps.length > 0) {
        // Entries were trimmed before this recorder read them: what they said is lost, so every
        // unfinished row of those queues takes Redis's own state instead, then reading goes on.
        for (const gap of read.gaps) if (!(await closeGap(gap, ids))) return;
        continue;
      }
      const reply = read.entries;
      if (!reply) {
        // Caught up: store the position of what needed no write, so the backlog others read is 0.
        if (unsaved.size > 0 && (await save([])) === undefined) break;
        if (draining) break;
        // Nothing new: wait for the next entry, then read it with the gap check above.
        const wake: Promise<unknown> = deps.source ? deps.source.wait(1000) : deps.redis.xread("COUNT", 1, "BLOCK", 1000, "STREAMS", ...ids.keys(), ...ids.values());
        await withTimeout(wake, REDIS_TIMEOUT_MS, "wait for BullMQ events").catch(() => Bun.sleep(500));
        continue;
      }
      const events: StreamEvent[] = [];
      for (const [key, entries] of reply) {
        const queue = tableOf.get(key)!.name;
        for (const [id, flat] of entries) events.push({ queue, id, fields: pairs(flat) });
        const last = entries[entries.length - 1];
        if (last) {
          const next = read.cursors?.get(key) ?? last[0];
          ids.set(key, next);
          unsaved.set(cursorOf(queue), next);
        }
      }
      stats.events += events.length;
      const changes = await describe(deps.redis, deps.prefix, events);
      const progress = events.map(toProgress).filter((p) => p !== null);
      if (changes.length === 0 && progress.length === 0 && Date.now() - savedAt < SAVE_POSITION_MS) continue;
      if (events.length >= BUSY_BATCH) busySince = performance.now();
      const written = await save(changes, progress);
      if (written === undefined) break;
      stats.batches++;
      stats.rowsChanged += written;
      stats.lastBatchSize = events.length;
      const newest = events[events.length - 1];
      if (newest) stats.lastLagMs = Math.max(0, Date.now() - Number(newest.id.split("-")[0]));
    }
  }

  /**
   * The entries after each cursor and, in the same MULTI (so nothing is trimmed in between), each
   * stream's info and whether the cursor's entry is still there: the gap check's snapshot.
   */
  async function readAfter(ids: Map<string, string>) {
    const keys = [...ids.keys()];
    const tx = deps.redis.multi();
    for (const key of keys) tx.xinfo("STREAM", key).xrange(key, ids.get(key)!, ids.get(key)!);
    tx.xread("COUNT", BATCH, "STREAMS", ...keys, ...keys.map((k) => ids.get(k)!));
    const replies = await tx.exec();
    if (!replies) throw new Error("Redis gave no answer to the events read");
    const [readErr, read] = replies[2 * keys.length]!;
    if (readErr) throw readErr;
    const entries = (read ?? null) as [string, [string, string[]][]][] | null;
    const gaps: Gap[] = [];
    const snapshots = keys.map((key, i) => {
      const [infoErr, infoReply] = replies[2 * i]!;
      const cursor = ids.get(key)!;
      const info = infoErr ? null : parseStreamInfo(infoReply);
      const cursorExists = Array.isArray(replies[2 * i + 1]![1]) && (replies[2 * i + 1]![1] as unknown[]).length > 0;
      if (info) {
        convergedWhileMissing.delete(key);
        if (gapCheck.lost(key, cursor, info, cursorExists)) gaps.push({ key, cursor, upTo: info.lastGeneratedId, info });
      } else if (cursor !== "0" && !convergedWhileMissing.has(key)) {
        // The whole stream is gone (Redis lost its data, or someone deleted the key).
        gaps.push({ key, cursor, upTo: cursor, info: null });
      }
      return { key, info };
    });
    if (gaps.length === 0)
      for (const { key, info } of snapshots) {
        if (!info) continue;
        const n = entries?.find(([k]) => k === key)?.[1].length ?? 0;
        gapCheck.read(key, n, info, n < BATCH);
      }
    return { gaps, entries };
  }

  /** A source's read in readAfter's shape: never a gap. */
  async function readSource(source: EventSource, ids: Map<string, string>) {
    const read = await source.read([...ids].map(([key, cursor]) => ({ key, queue: tableOf.get(key)!.name, cursor })), BATCH);
    return { gaps: [] as Gap[], entries: read.entries, cursors: read.cursors };
  }

  async function closeGap(gap: Gap, ids: Map<string, string>): Promise<boolean> {
    const { name: queue, table } = tableOf.get(gap.key)!;
    log.warn("BullMQ events were trimmed before they were recorded; taking job states from Redis", { queue, cursor: gap.cursor, upTo: gap.upTo });
    const started = performance.now();
    const step = <T>(what: string, fn: () => Promise<T>) => retry(fn, () => running && leading(), log, what);
    let changed: number | undefined = 0;
    for (const t of tablesOf(table)) {
      const n = await convergeQueue({ db: deps.db, redis: deps.redis, prefix: deps.prefix, shard, cursor: cursorOf(queue) }, t, queue, gap.upTo, step);
      changed = n === undefined ? undefined : changed + n;
      if (changed === undefined) return false;
    }
    stats.gaps++;
    stats.rowsConverged += changed;
    if (!gap.info) convergedWhileMissing.add(gap.key);
    gapCheck.converged(gap.key, gap.info);
    ids.set(gap.key, gap.upTo);
    unsaved.delete(cursorOf(queue));
    log.info("converged job states from Redis", { queue, rowsChanged: changed, ms: Math.round(performance.now() - started) });
    return true;
  }

  async function write(db: Db, changes: TableChange[], cursors: Map<string, string>, progress: ProgressReport[]) {
    // Before the statuses: a job's last progress is in its row's report by the time it shows completed.
    if (progress.length > 0) await recordProgress(db, progress);
    const folded = (["flow_jobs", "jobs"] as const).flatMap((table) =>
      collapse(changes.filter((c) => c.table === table).map((c) => c.change)).map((change) => ({ table, change })),
    );
    return recordStatusBatch(db, folded, cursors);
  }

  async function describe(redis: Redis, prefix: string, events: StreamEvent[]) {
    const out: TableChange[] = [];
    const failures: { change: StatusChange; key: string; queue: string; byChild: boolean }[] = [];
    for (const e of events) {
      const change = toStatusChange(e);
      if (!change) continue;
      for (const table of tablesOf(tableOf.get(keyOf(e.queue))!.table)) out.push({ table, change });
      if (change.status === "failed")
        failures.push({ change, key: bullKey(prefix, e.queue, change.jobId), queue: e.queue, byChild: failedByChild(e.fields.failedReason) });
    }
    if (failures.length > 0) {
      // The stream names the reason only; the attempt count, the stack and the name live on the
      // job's hash (gone if the job was removed meanwhile: then the row keeps what it had). Its opts
      // say how many attempts its run made before Redis lost it, which BullMQ's count leaves out.
      const details = deps.source
        ? await deps.source
            .failureDetails(failures.map((f) => ({ queue: f.queue, jobId: f.change.jobId })))
            .then((rows) => rows.map((row) => [null, row] as const))
            .catch(() => null)
        : await redis
            .pipeline(failures.map((f) => ["hmget", f.key, "atm", "stacktrace", "name", "opts"]))
            .exec()
            .catch(() => null);
      failures.forEach((f, i) => {
        const [atm, stacktrace, name, opts] = ((details?.[i]?.[1] as (string | null)[] | undefined) ?? []) as (string | null)[];
        if (f.byChild && name) deps.onFailedByChild?.(f.queue, name);
        const stacks = safeParse(stacktrace) as string[] | null;
        const counted = atm !== null && atm !== undefined ? Number(atm) + carriedAttempts(opts) : f.change.attemptsMade;
        const { error, attemptsMade } = withAttempts(f.change.error!, counted, stacks && stacks.length > 0 ? stacks[stacks.length - 1] : undefined);
        f.change.error = error;
        if (attemptsMade !== undefined) f.change.attemptsMade = attemptsMade;
      });
    }
    return out;
  }

  return {
    stats,
    /** Drains what is left in the streams (bounded by `ms`), then stops. */
    async stop(ms = 3_000) {
      draining = true;
      const timer = setTimeout(() => (running = false), ms);
      await loop.catch(() => {});
      clearTimeout(timer);
      running = false;
      while (releasing) await releasing;
    },
  };
}

const BOTH: TrackedTable[] = ["flow_jobs", "jobs"];
const tablesOf = (t: TrackedTable | "both"): TrackedTable[] => (t === "both" ? BOTH : [t]);

function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

function safeParse(text: string | null | undefined): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Retries until it succeeds or `alive()` turns false (then undefined): a lost write is not an option. */
async function retry<T>(fn: () => Promise<T>, alive: () => boolean, log: Logger, what: string): Promise<T | undefined> {
  for (let delay = 100; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      return await withTimeout(fn(), DB_TIMEOUT_MS, what);
    } catch (err) {
      if (!alive()) return undefined;
      log.warn(`cannot ${what}; retrying`, { err: String(err), retryInMs: delay });
      await Bun.sleep(delay);
    }
  }
}
