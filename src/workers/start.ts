import { Worker } from "bullmq";
import type { Config } from "../config";
import type { Database } from "../db/client";
import type { Logger } from "../log";
import { cancelChannel, createProducer } from "../queues";
import { createRedis } from "../redis";
import { createProcessor } from "./processor";
import { startStatusRecorder } from "./status-recorder";
import { startEnqueuer } from "./enqueuer";
import { startHealthServer } from "./health-server";

/**
 * The worker role: one BullMQ Worker per queue (each on its own connection), the status recorder
 * that mirrors Redis's events into Postgres, the enqueuer for accepted-but-not-queued work, and a
 * subscription that aborts jobs cancelled through the API.
 */
export async function startWorkers(deps: { config: Config; database: Database; log: Logger }) {
  const { config, database } = deps;
  const log = deps.log.child({ role: "worker" });
  const processor = createProcessor(config);
  const queueNames = [...config.flowQueues];
  const workers = queueNames.map((name) => {
    const worker = new Worker(name, processor, {
      connection: createRedis(config.redisUrl, "blocking", `flowd-worker-${name}`),
      prefix: config.prefix,
      concurrency: config.workerConcurrency,
      autorun: true,
    });
    worker.on("error", (err) => log.warn("worker error", { queue: name, err: String(err) }));
    return worker;
  });

  const subscriber = createRedis(config.redisUrl, "blocking", "flowd-cancel");
  subscriber.on("error", () => {});
  await subscriber.subscribe(cancelChannel(config.prefix));
  subscriber.on("message", (_channel, message) => {
    for (const jobId of message.split(",")) for (const w of workers) w.cancelJob(jobId, "cancelled through the API");
  });

  const recorderRedis = createRedis(config.redisUrl, "blocking", "flowd-recorder");
  recorderRedis.on("error", () => {});
  const recorder = startStatusRecorder({
    db: database.db,
    redis: recorderRedis,
    prefix: config.prefix,
    queues: queueNames.map((name) => ({ name, table: "flow_jobs" as const })),
    log,
  });

  const producerRedis = createRedis(config.redisUrl, "request", "flowd-enqueuer");
  producerRedis.on("error", () => {});
  const producer = createProducer(producerRedis, config);
  const enqueuer = startEnqueuer({ db: database.db, producer, log });

  const health =
    config.workerHealthPort > 0
      ? startHealthServer({ port: config.workerHealthPort, host: config.host, sql: database.sql, redis: producerRedis })
      : null;

  log.info("workers started", { queues: queueNames, concurrency: config.workerConcurrency, healthPort: health?.port });
  return {
    recorder,
    async stop() {
      await health?.stop();
      await enqueuer.stop();
      // Let running jobs finish (bounded by the caller's shutdown timer), then stop reading events.
      await Promise.allSettled(workers.map((w) => w.close()));
      await recorder.stop();
      await producer.close();
      for (const r of [subscriber, recorderRedis, producerRedis]) r.disconnect();
    },
  };
}
