import { AsyncLocalStorage } from "node:async_hooks";
import { once } from "node:events";
import { FlowProducer, Queue } from "bullmq";
import type { ChainableCommander } from "ioredis";
import type { Config } from "./config";
import { withTimeout } from "./timeout";
import { loggedByConnection, type RedisClient } from "./redis";
import { pgBackend, type PgQueues } from "./pg-queues";
import { configuredShards, pickShard, shardPrefix, type Shard } from "./shards";
import { bullTelemetry } from "./telemetry";

/** Kept in Redis this long after finishing; Postgres keeps the record for good. */
export const REDIS_RETENTION = {
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

/** The Postgres write an add must wait for, for adds run through `addAfter`. */
const sendGates = new AsyncLocalStorage<Promise<unknown>>();

/**
 * Runs `add` so that BullMQ builds its MULTI at once but sends it only after `gate` resolves, and
 * never if `gate` rejects. A large add's CPU work (a third of a 1,000-job create) then overlaps
 * the Postgres commit that must come first, and nothing reaches Redis before the rows exist.
 */
export function addAfter<T>(gate: Promise<unknown>, add: () => Promise<T>): Promise<T> {
  return sendGates.run(gate, add);
}

/**
 * `withTimeout` for an add: one run through `addAfter` is timed from its gate on, however long the
 * write before it took; a failed gate fails it with the gate's own error, unsent.
 */
export function timeAdd<T>(adding: Promise<T>, ms: number, what: string): Promise<T> {
  const gate = sendGates.getStore();
  if (!gate) return withTimeout(adding, ms, what);
  adding.catch(() => {}); // settled through the gate below, or never sent
  return gate.then(() => withTimeout(adding, ms, what));
}

/**
 * Makes the connection's MULTIs honour `addAfter`'s gate; others are sent as usual. Only a queued
 * MULTI (ioredis's default, BullMQ's choice) can wait: its commands stay in the client until exec.
 */
function gateTransactions(redis: RedisClient) {
  const multi = redis.multi.bind(redis) as (...args: unknown[]) => ChainableCommander;
  redis.multi = ((...args: unknown[]) => {
    const transaction = multi(...args);
    const gate = sendGates.getStore();
    if (gate && typeof transaction?.exec === "function") {
      const exec = transaction.exec.bind(transaction) as (...a: unknown[]) => ReturnType<ChainableCommander["exec"]>;
      transaction.exec = ((...a: unknown[]) => gate.then(() => exec(...a))) as typeof transaction.exec;
    }
    return transaction;
  }) as typeof redis.multi;
}

/**
 * On the Postgres backend there is no MULTI to hold: the backend's adds themselves wait for
 * `addAfter`'s gate, so no job exists in BullMQ's tables before its row commits, and none if it fails.
 */
function gateAdds(backend: object) {
  const b = backend as Record<string, unknown>;
  for (const method of ["addJob", "addJobs", "addFlow"]) {
    const original = b[method];
    if (typeof original !== "function") continue;
    b[method] = (...args: unknown[]) => {
      const gate = sendGates.getStore();
      return gate ? gate.then(() => original.apply(backend, args)) : original.apply(backend, args);
    };
  }
}

/** One shard's producer-side BullMQ objects: every key they touch is under its prefix, in one slot. */
function createShardProducer(store: RedisClient | PgQueues, config: Pick<Config, "eventStreamMaxLen">, prefix: string, telemetry: ReturnType<typeof bullTelemetry>) {
  const pgq = isPgQueues(store) ? store : null;
  const flowProducer = pgq ? new FlowProducer({ connection: pgq.pool, telemetry }, pgBackend) : new FlowProducer({ connection: store as RedisClient, prefix, telemetry });
  if (pgq) gateAdds(flowProducer.getBackend());
  flowProducer.on("error", loggedByConnection);
  const queues = new Map<string, Queue>();
  return {
    prefix,
    flowProducer,
    queue(name: string): Queue {
      let q = queues.get(name);
      if (!q) {
        if (pgq) {
          // 0: BullMQ never trims the event table; the recorder deletes only what it has recorded
          // (src/workers/pg-event-source.ts), so no event is lost before it is read.
          const pq = new Queue(name, { connection: pgq.pool, streams: { events: { maxLen: 0 } }, skipWaitingForReady: true, telemetry }, pgBackend);
          gateAdds(pq.backend);
          q = pq as unknown as Queue;
        } else {
          q = new Queue(name, {
            connection: store as RedisClient,
            prefix,
            // Stored in the queue's meta hash, where every BullMQ script that adds an event reads it.
            streams: { events: { maxLen: config.eventStreamMaxLen } },
            skipWaitingForReady: true,
            telemetry,
          });
        }
        q.on("error", loggedByConnection);
        queues.set(name, q);
      }
      return q;
    },
    close: () => Promise.allSettled([flowProducer.close(), ...[...queues.values()].map((q) => q.close())]),
  };
}
export type ShardProducer = ReturnType<typeof createShardProducer>;

/**
 * Producer-side BullMQ objects over one shared connection: adding, removing and inspecting jobs, per
 * shard (src/shards.ts). New work picks its shard with `pick`; work already stored names its own.
 */
export function createProducer(store: RedisClient | PgQueues, config: Pick<Config, "prefix" | "eventStreamMaxLen" | "shards">) {
  const pg = isPgQueues(store) ? store : null;
  if (!pg) gateTransactions(store as RedisClient);
  // With tracing on, BullMQ stores each add's trace context in the job's opts (telemetry.metadata),
  // where the worker's job span picks it up; off, this is undefined and BullMQ traces nothing.
  const telemetry = bullTelemetry();
  const shards = new Map<Shard, ShardProducer>();
  let closed = false;
  const at = (shard: Shard): ShardProducer => {
    let p = shards.get(shard);
    if (!p) {
      p = createShardProducer(store, config, shardPrefix(config.prefix, shard), telemetry);
      shards.set(shard, p);
    }
    return p;
  };
  const configured = configuredShards(config.shards);
  return {
    /** True once closed: background work on Redis should stop rather than fail. */
    get closed() {
      return closed;
    },
    /**
     * The shared connection, for the few reads BullMQ has no method for. Only on the Redis backend:
     * code that reads BullMQ's data directly asks `pg` first and reads its tables there.
     */
    get redis(): RedisClient {
      if (pg) throw new Error("no Redis connection on FLOWD_QUEUE_BACKEND=postgres");
      return store as RedisClient;
    },
    /** BullMQ's Postgres backend (FLOWD_QUEUE_BACKEND=postgres); null on Redis. */
    pg,
    /**
     * Rings every flowd process (cancelChannel, limitsChannel): Redis pub/sub, or Postgres NOTIFY on
     * the Postgres backend, whose 8,000-byte payload limit splits a long comma-separated list.
     */
    async signal(channel: string, message: string) {
      if (!pg) return void (await (store as RedisClient).publish(channel, message));
      for (const part of splitPayload(message)) await pg.pool.query("select pg_notify($1, $2)", [channel, part]);
    },
    /** The shards new work goes to (FLOWD_SHARDS). */
    shards: configured,
    /** The shard for new work with this id. */
    pick: (id: string): Shard => pickShard(id, config.shards),
    /** Where work that is not a job row's goes (webhook deliveries): the first configured shard. */
    home: configured[0]!,
    at,
    /**
     * Opens these queues on every configured shard and waits for their meta hash: until a Queue
     * writes it, BullMQ's scripts cap the event stream at their own default (10,000), not `eventStreamMaxLen`.
     */
    async declare(names: readonly string[], shards: readonly Shard[] = configured) {
      // A fail-fast connection refuses commands until it is ready, and BullMQ sends one at once.
      if (!pg) {
        const redis = store as RedisClient;
        if (redis.status !== "ready") await withTimeout(once(redis, "ready"), 10_000, "Redis connection");
      }
      await Promise.all(shards.flatMap((shard) => names.map((name) => at(shard).queue(name).getVersion())));
    },
    /** A queue's jobs by BullMQ state, summed over the configured shards; a shard that cannot answer counts nothing. */
    async jobCounts(name: string): Promise<Record<string, number>> {
      const perShard = await Promise.all(configured.map((shard) => at(shard).queue(name).getJobCounts().catch(() => ({}) as Record<string, number>)));
      const sum: Record<string, number> = {};
      for (const counts of perShard) for (const [state, n] of Object.entries(counts)) sum[state] = (sum[state] ?? 0) + n;
      return sum;
    },
    async close() {
      closed = true;
      await Promise.allSettled([...shards.values()].map((p) => p.close()));
    },
  };
}
export type Producer = ReturnType<typeof createProducer>;

/**
 * A key of BullMQ's layout in Redis: `prefix:queue` then a job id or a queue structure (`wait`,
 * `meta`, `events`…), e.g. `bullKey(prefix, "flows", jobId, "lock")`. The few reads BullMQ has no
 * method for build their keys here.
 */
export const bullKey = (prefix: string, queue: string, ...parts: string[]) => [prefix, queue, ...parts].join(":");

/**
 * The queue and job id in a job's key (`prefix:queue:id`), which BullMQ uses to name children;
 * users know job ids. Prefixes and queue names hold no colon, so the id is what follows the second.
 * BullMQ's Postgres backend has no prefix (`queue:id`): with one colon only, that is the form
 * (flowd's job ids hold none).
 */
export function parseJobKey(key: string): { queue: string; jobId: string } | null {
  const first = key.indexOf(":");
  const second = key.indexOf(":", first + 1);
  if (first > 0 && second < 0 && first < key.length - 1) return { queue: key.slice(0, first), jobId: key.slice(first + 1) };
  if (first < 0 || second < 0 || second === key.length - 1) return null;
  return { queue: key.slice(first + 1, second), jobId: key.slice(second + 1) };
}

/** Comma-separated lists cut at commas into NOTIFY payloads below Postgres' 8,000-byte limit. */
export function splitPayload(message: string, max = 7_000): string[] {
  if (message.length <= max) return [message];
  const parts: string[] = [];
  let current = "";
  for (const item of message.split(",")) {
    if (current && current.length + 1 + item.length > max) {
      parts.push(current);
      current = "";
    }
    current = current ? `${current},${item}` : item;
  }
  if (current) parts.push(current);
  return parts;
}

const isPgQueues = (store: RedisClient | PgQueues): store is PgQueues => "pool" in store && "schema" in store;

/** Publishes job ids to cancel; every worker process listens and aborts those it is running. One channel for all shards. */
export const cancelChannel = (prefix: string) => `${prefix}:flowd:cancel`;
/** Rung when a create or a limit change left jobs waiting on a rate limit: the limit sweepers' doorbell. */
export const limitsChannel = (prefix: string) => `${prefix}:flowd:limits`;

/** The queues flowd's own workers run handlers on: the flow queues and `jobs` (JOBS_QUEUE). */
export const consumedQueues = (config: Pick<Config, "flowQueues">): string[] => [...config.flowQueues, "jobs"];
