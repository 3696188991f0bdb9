import { Elysia } from "elysia";
import type { RedisClient as Redis } from "../redis";
import type { Config } from "../config";
import type { Database } from "../db/client";
import type { Hub } from "../events/hub";
import type { FlowDeps } from "../services/flows";
import type { Authenticate } from "../services/tokens";
import { VERSION } from "../version";
import { errorPlugin } from "./plugins/errors";
import { docsPlugin } from "./plugins/docs";
import { securityHeadersPlugin } from "./plugins/security-headers";
import { jsonBodyPlugin } from "./plugins/body";
import { createAdmissionGate } from "./plugins/admission";
import { createAdmission } from "./admission";
import { healthRoutes } from "./routes/health";
import { recorderShortfalls, type RecorderWatch } from "../services/recorder-health";
import { readShardSpread, spreadShortfall } from "../services/shard-spread";
import type { DegradedCheck } from "../readiness";
import { metricsRoutes } from "./routes/metrics";
import { requestLogPlugin } from "./plugins/request-log";
import { createMetrics, type Metrics } from "../metrics";
import type { Listener } from "../events/listener";
import { flowRoutes } from "./routes/flows";
import { eventRoutes } from "./routes/events";
import { statsRoutes } from "./routes/stats";
import { registryRoutes } from "./routes/registry";
import { limitRoutes } from "./routes/limits";
import { spawnRoutes } from "./routes/spawn";
import { uiRoutes } from "./routes/ui";
import { jobRoutes } from "./routes/jobs";
import { scheduleRoutes } from "./routes/schedules";
import { definitionRoutes } from "./routes/definitions";
import { triggerRoutes } from "./routes/triggers";
import { webhookRoutes } from "./routes/webhooks";
import { operationRoutes } from "./routes/operations";
import { callbackRoutes, signingSecretRoutes } from "./routes/http-tasks";
import { waitRoutes } from "./routes/waits";
import { SOCKET_MAX_FRAME, wsRoutes } from "./ws";
import { LONG_POLL_MAX_S } from "../services/waiters";
import { MAX_BULK_JOBS } from "../services/jobs";

export interface ApiDeps extends FlowDeps {
  database: Database;
  /** Null on the Postgres backend (FLOWD_QUEUE_BACKEND=postgres). */
  redis: Redis | null;
  authenticate: Authenticate;
  hub: Hub;
  listener?: Listener;
  /** The status recorder's backlog, as this process last read it (absent in tests that build an app alone). */
  recorder?: RecorderWatch;
  /** This process's metrics registry (one is made when absent). */
  metrics?: Metrics;
  /** Tells this process's bulk operation runner a new operation waits (absent: it finds it at its next poll). */
  kickOperations?: () => void;
}

/** The whole HTTP surface; `listen` is the caller's business, so tests can use `app.handle`. */
export function createApp(deps: ApiDeps) {
  const { config } = deps;
  const sockets = new Map<string, unknown>();
  const metrics = deps.metrics ?? createMetrics();
  const admission = createAdmission({
    maxCreates: config.maxCreatesInFlight,
    maxBytes: config.maxCreateBytesInFlight,
    maxJobs: config.maxCreateJobsInFlight,
    bodyLimit: config.bodyLimit,
    maxJobsPerCreate: Math.max(config.maxFlowJobs, MAX_BULK_JOBS),
    waitMs: config.admissionWaitMs,
    maxWaiters: config.admissionMaxWaiters,
    // Only a live recorder that falls behind refuses: with none running, the work waits in Redis
    // and /readyz says so, and refusing would not make it record sooner.
    recorderLagMs: () => (deps.recorder?.current?.alive ? deps.recorder.current.lagMs : 0),
    maxRecorderLagMs: config.recorderMaxLagMs,
  });
  const gate = createAdmissionGate(admission);
  return new Elysia({
    normalize: false,
    // Bun's own cap answers with an empty 413 before any hook runs, so it is out of the way: the
    // body plugin enforces the limit (in SPEC's shape) on the declared length before reading and
    // on streamed bodies while reading; a body nobody reads is discarded by Bun, not buffered.
    serve: {
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      // Above the longest long-poll (`wait` ≤ 60 s), so a waiting request is never cut off idle.
      idleTimeout: LONG_POLL_MAX_S + 15,
    },
    websocket: {
      idleTimeout: 120,
      sendPings: true,
      maxPayloadLength: SOCKET_MAX_FRAME,
      backpressureLimit: config.socketBufferLimit,
      closeOnBackpressureLimit: true,
    },
  })
    .use(requestLogPlugin({ log: deps.log, metrics }))
    .use(securityHeadersPlugin(config.corsOrigins))
    .use(errorPlugin(deps.log))
    .use(jsonBodyPlugin(config.bodyLimit, gate.parsed))
    // After the body plugin: a body declared over the limit is 413 without taking (or waiting for) a place.
    .use(gate.plugin)
    .use(
      docsPlugin({
        info: {
          title: "flowd",
          version: VERSION,
          description:
            "Job flows on BullMQ, with Postgres as the source of truth. Each query parameter is given at most once (none is a list): a repeat is 400 invalid_input naming it.",
          license: { name: "Proprietary", identifier: "LicenseRef-flowd" },
        },
        // Relative: the document describes whichever address it was fetched from.
        servers: [{ url: "/", description: "this flowd API" }],
        tags: DOC_TAGS,
        components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "an API token from `flowd token create --user NAME`" } } },
        // Every route needs the token unless its own `security` says otherwise (health, readiness, metrics).
        security: [{ bearer: [] }],
      }),
    )
    .use(
      healthRoutes({
        sql: deps.database.sql,
        redis: deps.redis,
        degraded: allChecks(recorderCheck(deps.recorder, config.recorderMaxLagMs), deps.redis ? spreadCheck(deps.redis, config) : undefined),
      }),
    )
    .use(flowRoutes(deps))
    .use(jobRoutes(deps))
    .use(spawnRoutes(deps))
    .use(scheduleRoutes(deps))
    .use(definitionRoutes(deps))
    .use(triggerRoutes(deps))
    .use(webhookRoutes(deps))
    .use(operationRoutes(deps))
    .use(signingSecretRoutes(deps))
    .use(callbackRoutes(deps))
    .use(waitRoutes(deps))
    .use(eventRoutes({ db: deps.db, authenticate: deps.authenticate }))
    .use(statsRoutes({ db: deps.db, authenticate: deps.authenticate }))
    .use(registryRoutes(deps))
    .use(limitRoutes(deps))
    .use(uiRoutes())
    .use(metricsRoutes({ ...deps, metrics, socketCount: () => sockets.size, admission: admission.stats }))
    .use(wsRoutes({ db: deps.db, hub: deps.hub, authenticate: deps.authenticate, config, sockets }));
}
export type App = ReturnType<typeof createApp>;

const DOC_TAGS = [
  { name: "flows", description: "Trees of parent/child jobs" },
  { name: "jobs", description: "Single jobs" },
  { name: "schedules", description: "Cron or interval schedulers that create jobs" },
  { name: "webhooks", description: "Signed deliveries of events (Standard Webhooks)" },
  { name: "http tasks", description: "Signed calls to your services, and the callbacks of tasks parked by a 202" },
  { name: "waits", description: "Wait steps (wait, signal, approval): signals, decisions and completion URLs" },
  { name: "events", description: "The event log and the live socket" },
  { name: "stats", description: "Counts and throughput" },
  { name: "handlers", description: "The handler registry and live workers" },
  { name: "operations", description: "Bulk actions by filter, worked in the background and followed here" },
  { name: "definitions", description: "Named, versioned flows, run with an input by hand, by schedules and by published events" },
  { name: "health", description: "Liveness, readiness, metrics (no token)" },
];

/** A cluster's masters that hold no shard: the readiness body names them, and `degraded` says so when FLOWD_SHARDS > 1. */
const spreadCheck =
  (redis: Redis, config: Config): DegradedCheck =>
  async () => {
    const spread = await readShardSpread(redis, config);
    const shortfall = spread && spreadShortfall(spread);
    return { degraded: shortfall ? [shortfall] : [], details: spread ? { shards: spread } : {} };
  };

/** Several checks as one: every shortfall, every detail. */
const allChecks =
  (...checks: (DegradedCheck | undefined)[]): DegradedCheck =>
  async () => {
    const results = await Promise.all(checks.flatMap((check) => (check ? [check()] : [])));
    return { degraded: results.flatMap((r) => r.degraded), details: Object.assign({}, ...results.map((r) => r.details)) };
  };

/** /readyz reads the recorder afresh: a monitor asking wants the present, not the last poll. */
const recorderCheck = (watch: RecorderWatch | undefined, maxLagMs: number): DegradedCheck | undefined =>
  watch &&
  (async () => {
    const health = await watch.read();
    return { degraded: recorderShortfalls(health, maxLagMs), details: { recorder: health } };
  });
