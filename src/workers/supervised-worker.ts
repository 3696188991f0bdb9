import { Worker, type Processor, type WorkerOptions } from "bullmq";
import type { RedisClient as Redis } from "../redis";
import type { Logger } from "../log";
import { bullKey } from "../queues";
import { withTimeout } from "../timeout";
import { startLoop } from "./loop";
import { pgBackend, type PgQueues } from "../pg-queues";

/**
 * One queue's BullMQ Worker that can be swapped for a fresh one on new connections. It counts the
 * jobs it runs, so the probe can tell an idle worker from a busy one.
 */
export function supervisedWorker(
  name: string,
  processor: Processor,
  options: Omit<WorkerOptions, "connection">,
  /** A new Redis connection per worker, or BullMQ's Postgres backend (its pool, shared). */
  connect: (() => Redis) | { pg: PgQueues },
  log: Logger,
) {
  let running = 0;
  let lastStartAt = Date.now();
  const counted: Processor = async (job, token, signal) => {
    running++;
    lastStartAt = Date.now();
    try {
      return await processor(job, token, signal);
    } finally {
      running--;
    }
  };
  const create = () => {
    if (typeof connect !== "function") {
      const worker = new Worker(name, counted, { ...options, connection: connect.pg.pool }, pgBackend) as unknown as Worker;
      worker.on("error", (err) => log.warn("worker error", { queue: name, err: String(err) }));
      return { worker, connection: null };
    }
    const connection = connect();
    const worker = new Worker(name, counted, { ...options, connection });
    worker.on("error", (err) => log.warn("worker error", { queue: name, err: String(err) }));
    return { worker, connection };
  };
  let current = create();
  let replacements = 0;
  return {
    name,
    get worker() {
      return current.worker;
    },
    get running() {
      return running;
    },
    get lastStartAt() {
      return lastStartAt;
    },
    get replacements() {
      return replacements;
    },
    /** Starts a new worker first, then drops the old one and its connections without waiting on them. */
    async replace() {
      const old = current;
      current = create();
      lastStartAt = Date.now();
      replacements++;
      // A stuck close may never settle: then force BullMQ's own connections shut too.
      await withTimeout(old.worker.close(true), 5_000, "closing a stuck worker").catch(() => {});
      await withTimeout(old.worker.disconnect(), 1_000, "disconnecting a stuck worker").catch(() => {});
      old.connection?.disconnect();
    },
    async close() {
      await current.worker.close();
      current.connection?.disconnect();
    },
  };
}
export type SupervisedWorker = ReturnType<typeof supervisedWorker>;

/**
 * A worker is stuck when its queue has had jobs waiting for `stuckMs` while this worker ran nothing
 * and started nothing: a healthy idle worker would have taken one.
 */
export function isStuck(s: { waitingSince: number; lastStartAt: number; running: number; now: number; stuckMs: number }): boolean {
  return s.running === 0 && s.now - s.waitingSince >= s.stuckMs && s.now - s.lastStartAt >= s.stuckMs;
}

/** A queue's head may wait on purpose: a rate limit in force, or a global concurrency cap reached. */
export function heldOnPurpose(q: { limiterTtlMs: number; concurrency: number | null; active: number }): boolean {
  return q.limiterTtlMs > 0 || (q.concurrency !== null && q.active >= q.concurrency);
}

/** Redis replies read per queue on each probe. */
const PROBES = 6;

/**
 * Guards against workers that stop taking jobs without any error — BullMQ's known failure after a
 * reconnect, or a connection the network silently dropped: it watches the head of each queue and
 * replaces this process's worker when jobs have waited at every look for `stuckMs` while the
 * worker started none. Jobs, not one job: another process may keep taking them one by one, and
 * a healthy idle worker here would have taken some.
 */
export function startWorkerProbe(deps: { redis: Redis; prefix: string; workers: SupervisedWorker[]; stuckMs: number; log: Logger }) {
  const { redis, prefix, workers, stuckMs, log } = deps;
  // Per queue: since when a job has been waiting at every look.
  const waitingSince = new Map<string, number>();
  const key = (queue: string, part: string) => bullKey(prefix, queue, part);
  return startLoop(
    Math.max(250, Math.floor(stuckMs / 4)),
    async () => {
      const replies = await withTimeout(
        redis
          .pipeline(
            workers.flatMap((w) => [
              ["lindex", key(w.name, "wait"), "-1"],
              ["zrange", key(w.name, "prioritized"), "0", "0"],
              ["hget", key(w.name, "meta"), "paused"],
              // A rate limit or a global concurrency cap (set by an operator) holds the head on purpose.
              ["pttl", key(w.name, "limiter")],
              ["hget", key(w.name, "meta"), "concurrency"],
              ["llen", key(w.name, "active")],
            ]),
          )
          .exec(),
        stuckMs,
        "probing the queues",
      );
      if (!replies) return;
      const now = Date.now();
      for (const [i, w] of workers.entries()) {
        const [waiting, prioritized, paused, limiterTtl, cap, active] = replies
          .slice(i * PROBES, (i + 1) * PROBES)
          .map(([err, value]) => (err ? null : value));
        const head = (waiting as string | null) ?? (prioritized as string[] | null)?.[0] ?? null;
        const held = heldOnPurpose({ limiterTtlMs: Number(limiterTtl), concurrency: cap === null ? null : Number(cap), active: Number(active) });
        if (!head || paused || held) {
          waitingSince.delete(w.name);
          continue;
        }
        const since = waitingSince.get(w.name) ?? now;
        waitingSince.set(w.name, since);
        if (!isStuck({ waitingSince: since, lastStartAt: w.lastStartAt, running: w.running, now, stuckMs })) continue;
        log.warn("worker took no job while one was waiting; replacing it", { queue: w.name, jobId: head, waitedMs: now - since });
        waitingSince.delete(w.name);
        await w.replace();
      }
    },
    (err) => log.debug("worker probe failed; will retry", { err: String(err) }),
  );
}
