import type { Config } from "../config";
import type { Database } from "../db/client";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { connectRedis } from "../redis";
import { JOBS_QUEUE } from "../services/jobs";
import { recorderLease } from "../services/recorder-health";
import { shardLabel, shardPrefix, type Shard } from "../shards";
import { startLease } from "./lease";
import { startStatusRecorder } from "./status-recorder";
import { addReleased } from "../scheduling/release";
import { createLimitReleaser } from "../scheduling/limit-release";
import { createProducer, type Producer } from "../queues";
import type { PgQueues } from "../pg-queues";
import type { RedisClient } from "../redis";
import { createPgEventSource } from "./pg-event-source";

const STANDBY_RETRY_MS = 5_000;

/** Every queue whose BullMQ events become statuses in Postgres, with the table its rows live in. */
export const recordedQueues = (config: Pick<Config, "flowQueues" | "externalQueues">) => [
  ...config.flowQueues.map((name) => ({ name, table: "flow_jobs" as const })),
  { name: JOBS_QUEUE, table: "jobs" as const },
  // Users' own workers run these; a flow job and a single job may share one.
  ...config.externalQueues.map((name) => ({ name, table: "both" as const })),
];

/**
 * The status recorder of one shard (default: the plain prefix) with its lease and its own Redis
 * connection. Worker processes run it, and so do API processes, on standby: with only API
 * processes and users' own BullMQ workers running, someone still writes every transition to
 * Postgres. One process records a shard at a time; each shard has its own lease, so N shards'
 * recorders write in parallel, spread over the processes that race for the leases.
 */
export function startRecording(deps: {
  config: Config;
  database: Database;
  log: Logger;
  metrics?: Metrics;
  standby?: boolean;
  shard?: Shard;
  mayTake?: () => boolean;
  /** The process's producer, when it has one (workers): releases of graph jobs go through it. */
  producer?: Producer;
  /** BullMQ's Postgres backend (FLOWD_QUEUE_BACKEND=postgres): events are read there, and no Redis connection is opened. */
  pg?: PgQueues | null;
}) {
  const { config, database, log } = deps;
  const shard = deps.shard ?? null;
  // Its own connection: the recorder blocks on XREAD, which would hold up a connection shared with others.
  const pg = deps.pg ?? null;
  const redis = pg ? null : connectRedis(config, "blocking", shard === null ? "flowd-recorder" : `flowd-recorder-${shard}`, log);
  const source = pg ? createPgEventSource({ pg, queues: recordedQueues(config).map((q) => q.name), log }) : undefined;
  // An API process defers to worker processes (they try every second, it every 5 s, first after
  // 5 s), so with workers running one of them records and shows it on its health port; with none,
  // the API takes over within about 5 s.
  const timing = deps.standby ? { retryMs: STANDBY_RETRY_MS, firstTryMs: STANDBY_RETRY_MS } : {};
  // Without the process's producer (an API on standby), one of its own, opened on the first release:
  // a recorder that never releases a graph job holds no extra connection.
  let producer: Producer | undefined;
  const releaser = () => deps.producer ?? (producer ??= createProducer(pg ?? connectRedis(config, "request", "flowd-releaser", log), config));
  const limitReleaser = createLimitReleaser({ db: database.db, producer: releaser, log });
  const lease = startLease({ sql: database.sql, key: recorderLease(shard), name: shard === null ? "status-recorder" : `status-recorder-${shardLabel(shard)}`, log, mayTake: deps.mayTake, ...timing });
  const recorder = startStatusRecorder({
    lease,
    db: database.db,
    // Never used with a source.
    redis: redis as RedisClient,
    source,
    prefix: shardPrefix(config.prefix, shard),
    shard,
    queues: recordedQueues(config),
    log,
    // A parent failed by its child never reaches a processor (observeJobs counts the rest): the
    // recorder that reads its failure counts it, once, in whichever process holds the lease.
    onFailedByChild: deps.metrics ? (queue, handler) => deps.metrics!.jobsFailed.inc({ queue, handler }) : undefined,
    release: (ids) => addReleased({ db: database.db, producer: releaser(), log }, ids),
    releaseLimits: async (userIds) => limitReleaser.ring(userIds),
  });
  return {
    shard,
    recorder,
    lease,
    async stop() {
      await recorder.stop();
      await limitReleaser.idle();
      await lease.stop();
      redis?.disconnect();
      source?.close();
      if (producer) {
        await producer.close();
        if (!pg) producer.redis.disconnect();
      }
    },
  };
}
