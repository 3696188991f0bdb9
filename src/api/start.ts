import type { Config } from "../config";
import type { Database } from "../db/client";
import { startListener } from "../events/listener";
import { createHub } from "../events/hub";
import type { Logger } from "../log";
import { cancelChannel, createProducer } from "../queues";
import { connectRedis } from "../redis";
import { createWaiters } from "../services/waiters";
import { createAuthenticator } from "../services/tokens";
import { pruneEvents } from "../db/queries/event-log";
import { pruneDeliveries } from "../db/queries/webhooks";
import { pruneCallbacks } from "../db/queries/http-tasks";
import { foldTallies } from "../db/queries/metrics";
import { rateLimited } from "./rate-limit";
import { createApp } from "./app";
import type { Metrics } from "../metrics";
import { watchRecorder } from "../services/recorder-health";
import { JOBS_QUEUE } from "../services/jobs";
import { SCHEDULES_QUEUE } from "../services/schedules";
import { WEBHOOKS_QUEUE } from "../services/webhooks";
import { longPollTarget } from "../event-types";
import { createHandlerRegistry, followRegistry } from "../services/handler-registry";
import { startOperationRunner } from "../services/operation-runner";
import type { PgQueues } from "../pg-queues";
import { ConnectError } from "../errors";

/** The api role: HTTP + WebSocket server, the event listener feeding the socket hub, and log retention. */
export async function startApi(deps: {
  config: Config;
  database: Database;
  log: Logger;
  metrics?: Metrics;
  /** BullMQ's Postgres backend (FLOWD_QUEUE_BACKEND=postgres): then no Redis connection is opened. */
  pg?: PgQueues | null;
}) {
  const { config, database } = deps;
  const log = deps.log.child({ component: "api" });
  const pg = deps.pg ?? null;
  const redis = pg ? null : connectRedis(config, "request", "flowd-api", log);
  const producer = createProducer(pg ?? redis!, config);
  await producer.declare([...config.flowQueues, JOBS_QUEUE, SCHEDULES_QUEUE, WEBHOOKS_QUEUE, ...config.externalQueues]);
  const hub = createHub();
  const waiters = createWaiters();
  // Long-polls wait for a flow or a single job to finish: only their own events can end a wait.
  hub.observe((e) => {
    const target = longPollTarget(e);
    if (target) waiters.notify(target);
  });
  const recorder = watchRecorder({
    db: database.db,
    redis,
    pg,
    prefix: config.prefix,
    queues: [...config.flowQueues, JOBS_QUEUE, ...config.externalQueues],
    shards: producer.shards,
  });
  const registry = createHandlerRegistry(config);
  const registryFollower = followRegistry({ db: database.db, sql: database.sql, registry, log });
  await registryFollower.ready;
  const listener = startListener({ db: database.db, sql: database.sql, log, hub, longPolls: waiters.longPolls });
  await listener.ready;
  hub.stats.lastSeq = Math.max(hub.stats.lastSeq, listener.stats.lastSeq);

  const services = {
    config,
    db: database.db,
    producer,
    log,
    waiters,
    registry,
    broadcastCancel: async (jobIds: string[]) => {
      if (jobIds.length > 0) await producer.signal(cancelChannel(config.prefix), jobIds.join(","));
    },
  };
  // Bulk operations run in API processes: any of them takes over one whose holder died.
  const operations = startOperationRunner(services);
  const app = createApp({
    ...services,
    database,
    redis,
    hub,
    listener,
    recorder,
    metrics: deps.metrics,
    authenticate: rateLimited(createAuthenticator(database.db), config.rateLimit),
    kickOperations: operations.kick,
  });
  try {
    app.listen({ port: config.port, hostname: config.host });
  } catch (err) {
    if ((err as { code?: string }).code !== "EADDRINUSE") throw err;
    throw new ConnectError(`port ${config.port} on ${config.host} is in use, so the API cannot listen there: stop what listens on it or set PORT to a free port`);
  }
  hub.attach(app.server!);
  log.info("listening", { url: `http://${config.host}:${app.server!.port}` });

  const prune = setInterval(() => {
    pruneCallbacks(database.db, config.eventsRetentionHours).catch((err) => log.warn("callback pruning failed", { err: String(err) }));
    pruneEvents(database.db, config.eventsRetentionHours).catch((err) => log.warn("event pruning failed", { err: String(err) }));
    pruneDeliveries(database.db, config.eventsRetentionHours).catch((err) => log.warn("webhook delivery pruning failed", { err: String(err) }));
    foldTallies(database.db).catch((err) => log.warn("folding the metric tallies failed", { err: String(err) }));
  }, 10 * 60_000);

  return {
    app,
    hub,
    /** Where this API listens, as a URL (the port bound when PORT=0). */
    url: `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${app.server!.port}`,
    listener,
    async stop() {
      clearInterval(prune);
      recorder.stop();
      await app.stop(true);
      await operations.stop();
      waiters.releaseAll();
      await listener.stop();
      await registryFollower.stop();
      await producer.close();
      redis?.disconnect();
    },
  };
}
