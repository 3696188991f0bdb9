import type { Processor } from "bullmq";
import type { Config } from "../config";
import type { Database } from "../db/client";
import type { Logger } from "../log";
import { bullKey, cancelChannel, createProducer, limitsChannel } from "../queues";
import { connectRedis } from "../redis";
import { JOBS_QUEUE } from "../services/jobs";
import { runTick, SCHEDULES_QUEUE } from "../services/schedules";
import { createProcessor } from "./processor";
import { createWaitSteps } from "./wait-steps";
import { createHttpTasks } from "./http-task";
import { createSpawnContexts } from "./spawn-context";
import type { LoadedHandler } from "../handlers/loader";
import { startRegistration } from "./registration";
import { createJobLogSink } from "./job-log-sink";
import { startRecording } from "./recording";
import { startEnqueuer } from "./enqueuer";
import { startLimitSweeper } from "./limit-sweeper";
import { startScheduleKeeper } from "./schedule-keeper";
import { startHealthServer } from "./health-server";
import { startReconciler } from "./reconciler";
import { startWebhookDispatcher } from "./webhook-dispatcher";
import { WEBHOOKS_QUEUE } from "../services/webhooks";
import { deliver, type DeliveryJob } from "../services/webhook-delivery";
import { createMetrics, type Metric, type Metrics } from "../metrics";
import { observeJobs } from "./job-observer";
import type { RecorderStats } from "./status-recorder";
import { startWorkerProbe, supervisedWorker, type SupervisedWorker } from "./supervised-worker";
import { shardLabel, shardPrefix, type Shard } from "../shards";
import { startShardSet } from "./shard-set";
import { startRecorderShares } from "./recorder-shares";
import { withTimeout } from "../timeout";
import type { PgQueues } from "../pg-queues";


/** The status recorder's counters, for the worker's /metrics. */
const recorderMetrics = (s: RecorderStats, shard: Shard): Metric[] => {
  const labels = shardLabels(shard);
  return [
  { name: "flowd_recorder_batches_total", help: "Status batches written to Postgres.", type: "counter", samples: [{ labels, value: s.batches }] },
  { name: "flowd_recorder_events_total", help: "BullMQ events read.", type: "counter", samples: [{ labels, value: s.events }] },
  { name: "flowd_recorder_rows_changed_total", help: "Job rows changed by status batches.", type: "counter", samples: [{ labels, value: s.rowsChanged }] },
  { name: "flowd_recorder_last_batch_size", help: "Events in the last batch.", type: "gauge", samples: [{ labels, value: s.lastBatchSize }] },
  { name: "flowd_recorder_gaps_total", help: "Times BullMQ events were trimmed or lost before they were recorded (rows then converged from Redis).", type: "counter", samples: [{ labels, value: s.gaps }] },
  { name: "flowd_recorder_rows_converged_total", help: "Job rows changed by converging from Redis's job state after a gap.", type: "counter", samples: [{ labels, value: s.rowsConverged }] },
  { name: "flowd_recorder_lag_seconds", help: "From the last batch's newest event in Redis to its commit in Postgres.", type: "gauge", samples: [{ labels, value: s.lastLagMs / 1000 }] },
  ];
};

/**
 * The worker role: one BullMQ Worker per queue (each on its own connection) — the flow queues,
 * `jobs` and `schedules` — the status recorder that mirrors Redis's events into Postgres, the
 * enqueuer for accepted-but-not-queued work, the schedule keeper, and a subscription that aborts
 * jobs cancelled through the API.
 */
export async function startWorkers(deps: {
  config: Config;
  database: Database;
  log: Logger;
  metrics?: Metrics;
  modules?: readonly LoadedHandler[];
  /** The API's base as services reach it, for `http` tasks' callback URLs (see Config.publicUrl). */
  publicUrl?: () => string;
  /** BullMQ's Postgres backend (FLOWD_QUEUE_BACKEND=postgres): then no Redis connection is opened. */
  pg?: PgQueues | null;
}) {
  const { config, database } = deps;
  const log = deps.log.child({ role: "worker" });
  const pg = deps.pg ?? null;

  const producerRedis = pg ? null : connectRedis(config, "request", "flowd-producer", log);
  const producer = createProducer(pg ?? producerRedis!, config);
  const services = { db: database.db, producer, log };
  const metrics = deps.metrics ?? createMetrics();

  const logSink = createJobLogSink(database.db, log);
  const publicUrl = deps.publicUrl ?? (() => config.publicUrl ?? `http://${config.host}:${config.port}`);
  const spawnContexts = createSpawnContexts({ db: database.db, producer, log, config });
  const runJob = createProcessor(config, deps.modules, logSink, createHttpTasks({ db: database.db, config, publicUrl }), spawnContexts, createWaitSteps({ db: database.db }));
  // Each delivery that ends frees a slot of its user: the dispatcher hands out the next due row at once.
  let dispatcher: ReturnType<typeof startWebhookDispatcher> | undefined;
  const runDelivery: Processor = async (delivery) => {
    try {
      return await deliver({ db: database.db, config, producer }, delivery as DeliveryJob);
    } finally {
      dispatcher?.wake();
    }
  };
  const processors = (shard: Shard): [string, Processor][] => [
    ...config.flowQueues.map((q): [string, Processor] => [q, runJob]),
    [JOBS_QUEUE, runJob],
    [SCHEDULES_QUEUE, (tick) => runTick({ ...services, config }, tick, shard)],
    [WEBHOOKS_QUEUE, runDelivery],
  ];
  const queueNames = processors(null).map(([name]) => name);
  const workers: SupervisedWorker[] = [];
  const probes: { stop(): Promise<void> }[] = [];
  const recordings: ReturnType<typeof startRecording>[] = [];
  const shares = startRecorderShares({ db: database.db, log });

  /** Everything one shard needs in this process: a worker per queue, their probe, and a recorder (with the shard's lease). */
  const serveShard = async (shard: Shard) => {
    // The Postgres backend has no shards: a row naming one was queued on Redis, and stays there.
    if (pg && shard !== null) return void log.warn("rows name a Redis shard; the Postgres backend does not serve it", { shard: shardLabel(shard) });
    const prefix = shardPrefix(config.prefix, shard);
    const own = processors(shard).map(([name, processor]) =>
      supervisedWorker(
        name,
        observeJobs(name, processor, { log, metrics }),
        {
          prefix,
          concurrency: name === SCHEDULES_QUEUE ? 1 : config.workerConcurrency,
          // A killed worker's jobs run again within about lock + interval (30 s by default).
          lockDuration: config.lockDurationMs,
          stalledInterval: config.stalledIntervalMs,
        },
        pg ? { pg } : () => connectRedis(config, "blocking", shard === null ? `flowd-worker-${name}` : `flowd-worker-${name}-${shard}`, log),
        log,
      ),
    );
    workers.push(...own);
    await producer.declare(queueNames, [shard]);
    // The probe reads Redis's lists for BullMQ's silent stop after a Redis reconnect; on Postgres a
    // worker's LISTEN connection is rebuilt by BullMQ, and its wait polls on a timeout besides.
    if (producerRedis) probes.push(startWorkerProbe({ redis: producerRedis, prefix, workers: own, stuckMs: config.workerStuckMs, log }));
    // Each shard has its own recorder lease; the shares spread them over the worker processes.
    let recording: ReturnType<typeof startRecording> | undefined;
    recording = startRecording({ config, database, log, metrics, shard, producer, pg, mayTake: shares.mayTake(() => recording?.lease) });
    shares.track(recording.lease);
    recordings.push(recording);
  };
  // Read key by key, not through a Queue, whose construction would write a meta hash under a prefix nobody uses.
  const hasDeliveries = async (shard: Shard) => {
    if (!producerRedis) return false;
    const keys = ["wait", "prioritized", "delayed", "active", "paused"].map((k) => bullKey(shardPrefix(config.prefix, shard), WEBHOOKS_QUEUE, k));
    const found = await withTimeout(Promise.all(keys.map((key) => producerRedis.exists(key))), 2_000, "looking for deliveries");
    return found.some((n) => n > 0);
  };
  const shardSet = startShardSet({ db: database.db, shards: config.shards, log, add: serveShard, hasDeliveries });
  await shardSet.ready;
  const registration = startRegistration({ db: database.db, config, modules: deps.modules ?? [], queues: queueNames, log });
  await registration.ready;

  const limitSweeper = startLimitSweeper(services);
  const onSignal = (channel: string, message: string) => {
    if (channel === limitsChannel(config.prefix)) return limitSweeper.wake();
    for (const jobId of message.split(",")) for (const w of workers) w.worker.cancelJob(jobId, "cancelled through the API");
  };
  // Redis pub/sub, or Postgres LISTEN on the Postgres backend (producer.signal rings either).
  const subscriber = pg ? null : connectRedis(config, "blocking", "flowd-cancel", log);
  const listens: { unlisten(): Promise<void> }[] = [];
  if (subscriber) {
    await subscriber.subscribe(cancelChannel(config.prefix), limitsChannel(config.prefix));
    subscriber.on("message", onSignal);
  } else {
    for (const channel of [cancelChannel(config.prefix), limitsChannel(config.prefix)])
      listens.push(await database.sql.listen(channel, (message) => onSignal(channel, message)));
  }

  const enqueuer = startEnqueuer(services);
  const keeper = startScheduleKeeper(services);
  // What the reconciler repairs is what Redis lost; BullMQ's tables on the Postgres backend are
  // committed with flowd's rows, in the same database, so there it has nothing to repair.
  const reconciler = pg ? { totals: {}, stop: async () => {} } : startReconciler({ ...services, sql: database.sql, config });
  dispatcher = startWebhookDispatcher({ ...services, sql: database.sql, config });
  const recorderSamples = (pick: (r: ReturnType<typeof startRecording>) => Metric[]) => recordings.flatMap(pick);

  const health =
    config.workerHealthPort > 0
      ? startHealthServer({
          port: config.workerHealthPort,
          host: config.host,
          sql: database.sql,
          redis: producerRedis,
          registry: metrics,
          metrics: () => [
            ...mergeMetrics(recorderSamples((r) => recorderMetrics(r.recorder.stats, r.shard))),
            {
              name: "flowd_recorder_leader",
              help: "1 if this process records statuses (holds the lease; with FLOWD_SHARDS, per shard), 0 on standby.",
              type: "gauge",
              samples: recordings.map((r) => ({ labels: shardLabels(r.shard), value: r.lease.held ? 1 : 0 })),
            },
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
              samples: sumByQueue(workers),
            },
          ],
        })
      : null;

  log.info("workers started", { queues: queueNames, shards: shardSet.shards.map(shardLabel), concurrency: config.workerConcurrency, healthPort: health?.port });
  return {
    /** The recorder of the plain prefix, or of the first shard. */
    get recorder() {
      return recordings[0]!.recorder;
    },
    recordings,
    async stop() {
      await health?.stop();
      await shardSet.stop();
      await registration.stop();
      for (const p of probes) await p.stop();
      await dispatcher?.stop();
      await reconciler.stop();
      await keeper.stop();
      await enqueuer.stop();
      await limitSweeper.stop();
      // Let running jobs finish (bounded by the caller's shutdown timer), then stop reading events.
      await Promise.allSettled(workers.map((w) => w.close()));
      await logSink.stop();
      await shares.stop();
      await Promise.allSettled(recordings.map((r) => r.stop()));
      await producer.close();
      for (const l of listens) await l.unlisten().catch(() => {});
      for (const r of [subscriber, producerRedis]) r?.disconnect();
    },
  };
}

/** `shard` only when FLOWD_SHARDS splits the work: one shard keeps today's series. */
const shardLabels = (shard: Shard): Record<string, string> => (shard === null ? {} : { shard: shardLabel(shard) });

/** One metric per name, its samples from every shard's recorder. */
function mergeMetrics(list: Metric[]): Metric[] {
  const byName = new Map<string, Metric>();
  for (const m of list) {
    const seen = byName.get(m.name);
    if (seen) seen.samples.push(...m.samples);
    else byName.set(m.name, { ...m, samples: [...m.samples] });
  }
  return [...byName.values()];
}

/** Replacements per queue name, over all shards' workers of that queue. */
function sumByQueue(workers: SupervisedWorker[]) {
  const byQueue = new Map<string, number>();
  for (const w of workers) byQueue.set(w.name, (byQueue.get(w.name) ?? 0) + w.replacements);
  return [...byQueue].map(([queue, value]) => ({ labels: { queue }, value }));
}
