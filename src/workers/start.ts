import type { Processor } from "bullmq";
import type { Config } from "../config";
import type { Database } from "../db/client";
import type { Logger } from "../log";
import { cancelChannel, createProducer } from "../queues";
import { createRedis } from "../redis";
import { JOBS_QUEUE } from "../services/jobs";
import { runTick, SCHEDULES_QUEUE } from "../services/schedules";
import { createProcessor } from "./processor";
import type { LoadedHandler } from "../handlers/loader";
import { startRegistration } from "./registration";
import { createJobLogSink } from "./job-log-sink";
import { startRecording } from "./recording";
import { startEnqueuer } from "./enqueuer";
import { startScheduleKeeper } from "./schedule-keeper";
import { startHealthServer } from "./health-server";
import { startReconciler } from "./reconciler";
import { startWebhookDispatcher } from "./webhook-dispatcher";
import { deliver, WEBHOOKS_QUEUE } from "../services/webhooks";
import { createMetrics, type Metric, type Metrics } from "../metrics";
import { observeJobs } from "./job-observer";
import type { RecorderStats } from "./status-recorder";
import { startWorkerProbe, supervisedWorker } from "./supervised-worker";


/** The status recorder's counters, for the worker's /metrics. */
const recorderMetrics = (s: RecorderStats): Metric[] => [
  { name: "flowd_recorder_batches_total", help: "Status batches written to Postgres.", type: "counter", samples: [{ value: s.batches }] },
  { name: "flowd_recorder_events_total", help: "BullMQ events read.", type: "counter", samples: [{ value: s.events }] },
  { name: "flowd_recorder_rows_changed_total", help: "Job rows changed by status batches.", type: "counter", samples: [{ value: s.rowsChanged }] },
  { name: "flowd_recorder_last_batch_size", help: "Events in the last batch.", type: "gauge", samples: [{ value: s.lastBatchSize }] },
  { name: "flowd_recorder_gaps_total", help: "Times BullMQ events were trimmed or lost before they were recorded (rows then converged from Redis).", type: "counter", samples: [{ value: s.gaps }] },
  { name: "flowd_recorder_rows_converged_total", help: "Job rows changed by converging from Redis's job state after a gap.", type: "counter", samples: [{ value: s.rowsConverged }] },
  { name: "flowd_recorder_lag_seconds", help: "From the last batch's newest event in Redis to its commit in Postgres.", type: "gauge", samples: [{ value: s.lastLagMs / 1000 }] },
];

/**
 * The worker role: one BullMQ Worker per queue (each on its own connection) — the flow queues,
 * `jobs` and `schedules` — the status recorder that mirrors Redis's events into Postgres, the
 * enqueuer for accepted-but-not-queued work, the schedule keeper, and a subscription that aborts
 * jobs cancelled through the API.
 */
export async function startWorkers(deps: { config: Config; database: Database; log: Logger; metrics?: Metrics; modules?: readonly LoadedHandler[] }) {
  const { config, database } = deps;
  const log = deps.log.child({ role: "worker" });

  const producerRedis = createRedis(config.redisUrl, "request", "flowd-producer", log);
  const producer = createProducer(producerRedis, config);
  const services = { db: database.db, producer, log };
  const metrics = deps.metrics ?? createMetrics();

  const logSink = createJobLogSink(database.db, log);
  const runJob = createProcessor(config, deps.modules, logSink);
  const runSchedule: Processor = (tick) => runTick(services, tick);
  const runDelivery: Processor = (delivery) => deliver({ db: database.db, config }, delivery);
  const queues: [string, Processor][] = [
    ...config.flowQueues.map((q): [string, Processor] => [q, runJob]),
    [JOBS_QUEUE, runJob],
    [SCHEDULES_QUEUE, runSchedule],
    [WEBHOOKS_QUEUE, runDelivery],
  ];
  const workers = queues.map(([name, processor]) =>
    supervisedWorker(
      name,
      observeJobs(name, processor, { log, metrics }),
      {
        prefix: config.prefix,
        concurrency: name === SCHEDULES_QUEUE ? 1 : config.workerConcurrency,
        // A killed worker's jobs run again within about lock + interval (30 s by default).
        lockDuration: config.lockDurationMs,
        stalledInterval: config.stalledIntervalMs,
      },
      () => createRedis(config.redisUrl, "blocking", `flowd-worker-${name}`, log),
      log,
    ),
  );
  await producer.declare(queues.map(([name]) => name));
  const registration = startRegistration({ db: database.db, config, modules: deps.modules ?? [], queues: queues.map(([q]) => q), log });
  await registration.ready;
  const probe = startWorkerProbe({ redis: producerRedis, prefix: config.prefix, workers, stuckMs: config.workerStuckMs, log });

  const subscriber = createRedis(config.redisUrl, "blocking", "flowd-cancel", log);
  await subscriber.subscribe(cancelChannel(config.prefix));
  subscriber.on("message", (_channel, message) => {
    for (const jobId of message.split(",")) for (const w of workers) w.worker.cancelJob(jobId, "cancelled through the API");
  });

  // One recorder per database does the writing; the others stand by to take over.
  const recording = startRecording({ config, database, log, metrics });
  const { recorder, lease: recorderLease } = recording;
  const enqueuer = startEnqueuer(services);
  const keeper = startScheduleKeeper(services);
  const reconciler = startReconciler({ ...services, sql: database.sql, config });
  const dispatcher = startWebhookDispatcher({ ...services, sql: database.sql, config });

  const health =
    config.workerHealthPort > 0
      ? startHealthServer({
          port: config.workerHealthPort,
          host: config.host,
          sql: database.sql,
          redis: producerRedis,
          registry: metrics,
          metrics: () => [
            ...recorderMetrics(recorder.stats),
            { name: "flowd_recorder_leader", help: "1 if this process records statuses (holds the lease), 0 on standby.", type: "gauge", samples: [{ value: recorderLease.held ? 1 : 0 }] },
            {
              name: "flowd_reconciler_repairs_total",
              help: "What the reconciler re-added after Redis lost it, by kind; `stranded` counts lost jobs no parent waited for any more.",
              type: "counter",
              samples: Object.entries(reconciler.totals).map(([kind, n]) => ({ labels: { kind }, value: n })),
            },
            {
              name: "flowd_worker_replacements_total",
              help: "Workers replaced because they took no job while one was waiting.",
              type: "counter",
              samples: workers.map((w) => ({ labels: { queue: w.name }, value: w.replacements })),
            },
          ],
        })
      : null;

  log.info("workers started", { queues: queues.map(([q]) => q), concurrency: config.workerConcurrency, healthPort: health?.port });
  return {
    recorder,
    async stop() {
      await health?.stop();
      await registration.stop();
      await probe.stop();
      await dispatcher.stop();
      await reconciler.stop();
      await keeper.stop();
      await enqueuer.stop();
      // Let running jobs finish (bounded by the caller's shutdown timer), then stop reading events.
      await Promise.allSettled(workers.map((w) => w.close()));
      await logSink.stop();
      await recording.stop();
      await producer.close();
      for (const r of [subscriber, producerRedis]) r.disconnect();
    },
  };
}
