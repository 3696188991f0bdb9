import type { Config } from "../config";
import type { Database } from "../db/client";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { createRedis } from "../redis";
import { JOBS_QUEUE } from "../services/jobs";
import { RECORDER_LEASE } from "../services/recorder-health";
import { startLease } from "./lease";
import { startStatusRecorder } from "./status-recorder";

const STANDBY_RETRY_MS = 5_000;

/** Every queue whose BullMQ events become statuses in Postgres, with the table its rows live in. */
export const recordedQueues = (config: Pick<Config, "flowQueues" | "externalQueues">) => [
  ...config.flowQueues.map((name) => ({ name, table: "flow_jobs" as const })),
  { name: JOBS_QUEUE, table: "jobs" as const },
  // Users' own workers run these; a flow job and a single job may share one.
  ...config.externalQueues.map((name) => ({ name, table: "both" as const })),
];

/**
 * The status recorder with its lease and its own Redis connection. Worker processes run it, and so
 * do API processes, on standby: with only API processes and users' own BullMQ workers running,
 * someone still writes every transition to Postgres. One process records at a time.
 */
export function startRecording(deps: { config: Config; database: Database; log: Logger; metrics?: Metrics; standby?: boolean }) {
  const { config, database, log } = deps;
  const redis = createRedis(config.redisUrl, "blocking", "flowd-recorder", log);
  // An API process defers to worker processes (they try every second, it every 5 s, first after
  // 5 s), so with workers running one of them records and shows it on its health port; with none,
  // the API takes over within about 5 s.
  const timing = deps.standby ? { retryMs: STANDBY_RETRY_MS, firstTryMs: STANDBY_RETRY_MS } : {};
  const lease = startLease({ sql: database.sql, key: RECORDER_LEASE, name: "status-recorder", log, ...timing });
  const recorder = startStatusRecorder({
    lease,
    db: database.db,
    redis,
    prefix: config.prefix,
    queues: recordedQueues(config),
    log,
    // A parent failed by its child never reaches a processor (observeJobs counts the rest): the
    // recorder that reads its failure counts it, once, in whichever process holds the lease.
    onFailedByChild: deps.metrics ? (queue, handler) => deps.metrics!.jobsFailed.inc({ queue, handler }) : undefined,
  });
  return {
    recorder,
    lease,
    async stop() {
      await recorder.stop();
      await lease.stop();
      redis.disconnect();
    },
  };
}
