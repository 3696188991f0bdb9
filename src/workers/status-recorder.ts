import type { Redis } from "ioredis";
import type { Db } from "../db/client";
import { applyStatusBatch, loadStreamCursors, type TableChange, type TrackedTable } from "../db/queries/status";
import type { Logger } from "../log";
import { collapse, toStatusChange, type StatusChange, type StreamEvent } from "../services/status";
import type { Lease } from "./lease";
import { bullKey } from "../queues";

export interface RecorderStats {
  batches: number;
  events: number;
  rowsChanged: number;
  lastBatchSize: number;
  /** From the newest event of the last batch entering Redis to its batch committed in Postgres. */
  lastLagMs: number;
}

const BATCH = 1000;

/**
 * Follows every queue's BullMQ event stream and writes the changes to Postgres, one transaction per
 * batch together with the stream cursors — so a crash re-reads at most one batch, and the guard
 * in the update makes re-reading harmless. A batch that cannot be written is retried, in order,
 * until Postgres answers; nothing is skipped. With a `lease`, only the process holding it records
 * (the others stand by): the streams are the same for every process, so one reader is enough.
 */
export function startStatusRecorder(deps: {
  db: Db;
  redis: Redis;
  prefix: string;
  queues: { name: string; table: TrackedTable }[];
  log: Logger;
  lease?: Lease;
}) {
  const log = deps.log.child({ component: "status-recorder" });
  const keyOf = (queue: string) => bullKey(deps.prefix, queue, "events");
  const tableOf = new Map(deps.queues.map((q) => [keyOf(q.name), q]));
  const stats: RecorderStats = { batches: 0, events: 0, rowsChanged: 0, lastBatchSize: 0, lastLagMs: 0 };
  let running = true;
  // On stop, read on without blocking until the streams are empty: what this process's workers
  // did last is in Postgres before it exits.
  let draining = false;

  // Stream positions read but not yet stored. A batch without a status change (BullMQ's `drained`
  // follows nearly every completion) costs no commit: its position is stored with the next write,
  // and re-reading such events after a crash changes nothing.
  const unsaved = new Map<string, string>();
  const save = async (changes: TableChange[]) => {
    const written = await retry(() => write(deps.db, changes, new Map(unsaved)), () => running, log, "write job statuses");
    if (written !== undefined) unsaved.clear();
    return written;
  };

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
      await follow(new Map(deps.queues.map((q) => [keyOf(q.name), stored?.get(q.name) ?? "0"])));
      if (draining) break;
    }
  })();

  /** Reads and records the streams while this process leads. */
  async function follow(ids: Map<string, string>) {
    while (running && leading()) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        const streams = [...ids.keys(), ...ids.values()];
        reply = (draining
          ? await deps.redis.xread("COUNT", BATCH, "STREAMS", ...streams)
          : await deps.redis.xread("COUNT", BATCH, "BLOCK", 1000, "STREAMS", ...streams)) as typeof reply;
      } catch (err) {
        if (!running) break;
        log.warn("cannot read BullMQ events; retrying", { err: String(err) });
        await Bun.sleep(500);
        continue;
      }
      if (!reply) {
        if (!draining) continue;
        if (unsaved.size > 0) await save([]);
        break;
      }
      const events: StreamEvent[] = [];
      for (const [key, entries] of reply) {
        const queue = tableOf.get(key)!.name;
        for (const [id, flat] of entries) events.push({ queue, id, fields: pairs(flat) });
        const last = entries[entries.length - 1];
        if (last) {
          ids.set(key, last[0]);
          unsaved.set(queue, last[0]);
        }
      }
      stats.events += events.length;
      const changes = await describe(deps.redis, deps.prefix, events);
      if (changes.length === 0) continue;
      const written = await save(changes);
      if (written === undefined) break;
      stats.batches++;
      stats.rowsChanged += written;
      stats.lastBatchSize = events.length;
      const newest = events[events.length - 1];
      if (newest) stats.lastLagMs = Math.max(0, Date.now() - Number(newest.id.split("-")[0]));
    }
  }

  async function write(db: Db, changes: TableChange[], cursors: Map<string, string>) {
    const folded = (["flow_jobs", "jobs"] as const).flatMap((table) =>
      collapse(changes.filter((c) => c.table === table).map((c) => c.change)).map((change) => ({ table, change })),
    );
    return applyStatusBatch(db, folded, cursors);
  }

  async function describe(redis: Redis, prefix: string, events: StreamEvent[]) {
    const out: TableChange[] = [];
    const failures: { change: StatusChange; key: string }[] = [];
    for (const e of events) {
      const change = toStatusChange(e);
      if (!change) continue;
      out.push({ table: tableOf.get(keyOf(e.queue))!.table, change });
      if (change.status === "failed") failures.push({ change, key: bullKey(prefix, e.queue, change.jobId) });
    }
    if (failures.length > 0) {
      // The stream names the reason only; the attempt count and the stack live on the job's hash
      // (gone if the job was removed meanwhile: then the row keeps what it had).
      const details = await redis
        .pipeline(failures.map((f) => ["hmget", f.key, "atm", "stacktrace"]))
        .exec()
        .catch(() => null);
      failures.forEach((f, i) => {
        const [atm, stacktrace] = ((details?.[i]?.[1] as (string | null)[] | undefined) ?? []) as (string | null)[];
        if (atm !== null && atm !== undefined) f.change.attemptsMade = Number(atm);
        const stacks = safeParse(stacktrace) as string[] | null;
        f.change.error = {
          message: f.change.error!.message,
          ...(stacks && stacks.length > 0 ? { stack: stacks[stacks.length - 1] } : {}),
          attemptsMade: f.change.attemptsMade ?? 0,
        };
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
    },
  };
}

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
      return await fn();
    } catch (err) {
      if (!alive()) return undefined;
      log.warn(`cannot ${what}; retrying`, { err: String(err), retryInMs: delay });
      await Bun.sleep(delay);
    }
  }
}
