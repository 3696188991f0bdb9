import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { parseSecretKey, SECRET_KEY_PATTERN } from "./secret-box";

/** Queues with a fixed meaning; a flow queue may not reuse their names. */
export const RESERVED_QUEUES = ["jobs", "schedules", "webhooks"] as const;

const QueueList = "^[A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64})*$";
// Origins as a browser sends them in `Origin`: compared as strings, so lower case, no path, no trailing slash.
const Origin = "https?://(\\[[0-9a-f:.]+\\]|[a-z0-9.-]+)(:[1-9][0-9]{0,4})?";
const OriginList = `^${Origin}(,${Origin})*$`;

const Duration = "[0-9]{1,9}(ms|s|m|h)";
const DurationList = `^${Duration}(,${Duration}){0,48}$`;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
/** `5s,5m,2h` → milliseconds, one entry per retry. */
const parseDurations = (text: string): number[] =>
  text.split(",").map((d) => {
    const [, n, unit] = /^(\d+)(ms|s|m|h)$/.exec(d)!;
    return Number(n) * UNIT_MS[unit as keyof typeof UNIT_MS];
  });

/** The environment, one key per variable: the schema is the documentation of what is accepted. */
export const EnvSchema = Type.Object({
  DATABASE_URL: Type.String({ pattern: "^postgres(ql)?://", default: "postgres://postgres@127.0.0.1:5432/flowd" }),
  REDIS_URL: Type.String({ pattern: "^rediss?://", default: "redis://127.0.0.1:6379" }),
  REDIS_CLUSTER_NODES: Type.Optional(
    Type.String({ pattern: "^[^\\s,:]+:[0-9]{1,5}(,[^\\s,:]+:[0-9]{1,5})*$", hint: "must be comma-separated host:port pairs such as 10.0.0.1:6379,10.0.0.2:6379" }),
  ),
  FLOWD_SHARDS: Type.Integer({ minimum: 1, maximum: 256, default: 1 }),
  // Where BullMQ keeps its queues: Redis, or BullMQ's own Postgres backend (no Redis at all).
  FLOWD_QUEUE_BACKEND: Type.Union([Type.Literal("redis"), Type.Literal("postgres")], { default: "redis" }),
  // The Postgres backend's schema in DATABASE_URL's database: the namespace FLOWD_PREFIX is on Redis.
  FLOWD_QUEUE_SCHEMA: Type.String({
    pattern: "^[A-Za-z_][A-Za-z0-9_]{0,62}$",
    default: "bullmq",
    hint: "must be a plain Postgres schema name: a letter or _, then letters, digits or _, at most 63",
  }),
  // `flowd dev` (and `flowd` with nothing at the default database address): the embedded Postgres's folder and port.
  FLOWD_DATA_DIR: Type.String({ minLength: 1, maxLength: 4096, default: ".flowd" }),
  FLOWD_EMBEDDED_POSTGRES_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 15432 }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: "127.0.0.1" }),
  FLOWD_PREFIX: Type.String({ pattern: "^[A-Za-z0-9_{}.-]{1,64}$", default: "flowd" }),
  FLOWD_QUEUES: Type.String({ pattern: QueueList, default: "flows" }),
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1000, default: 16 }),
  // Paths as given (relative to the working folder), comma-separated; checked when the worker loads them.
  FLOWD_HANDLERS: Type.Optional(Type.String({ pattern: "^[^,]+(,[^,]+)*$", hint: "must be comma-separated paths of handler modules or folders" })),
  FLOWD_EXTERNAL_QUEUES: Type.Optional(Type.String({ pattern: QueueList })),
  FLOWD_ALLOW_PRIVATE_URLS: Type.Boolean({ default: false }),
  FLOWD_CORS_ORIGINS: Type.Optional(
    Type.String({ pattern: OriginList, hint: "must be comma-separated origins such as https://app.example.com,http://localhost:5173 (lower case, no path, no trailing slash)" }),
  ),
  LOG_LEVEL: Type.Union(
    [Type.Literal("debug"), Type.Literal("info"), Type.Literal("warn"), Type.Literal("error"), Type.Literal("silent")],
    { default: "info" },
  ),
  FLOWD_BODY_LIMIT: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }),
  FLOWD_MAX_FLOW_JOBS: Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 }),
  FLOWD_MAX_FLOW_DEPTH: Type.Integer({ minimum: 1, maximum: 1000, default: 32 }),
  FLOWD_MAX_RESULT_BYTES: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 4 * 1024 * 1024 }),
  FLOWD_BULK_MAX: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000 }),
  FLOWD_SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000 }),
  FLOWD_EVENTS_RETENTION_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 365, default: 24 * 7 }),
  WORKER_HEALTH_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 0 }),
  FLOWD_LOCK_DURATION_MS: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 15_000 }),
  FLOWD_STALLED_INTERVAL_MS: Type.Integer({ minimum: 500, maximum: 3_600_000, default: 15_000 }),
  FLOWD_RECONCILE_INTERVAL_MS: Type.Integer({ minimum: 200, maximum: 3_600_000, default: 10_000 }),
  FLOWD_EVENT_STREAM_MAX_LEN: Type.Integer({ minimum: 1000, maximum: 100_000_000, default: 100_000 }),
  FLOWD_RECORDER_MAX_LAG_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 60_000 }),
  FLOWD_RATE_LIMIT: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 }),
  FLOWD_MAX_CREATES_IN_FLIGHT: Type.Integer({ minimum: 1, maximum: 100_000, default: 256 }),
  FLOWD_MAX_CREATE_BYTES_IN_FLIGHT: Type.Integer({ minimum: 1024, maximum: 4 * 1024 * 1024 * 1024, default: 8 * 1024 * 1024 }),
  FLOWD_MAX_CREATE_JOBS_IN_FLIGHT: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 8000 }),
  FLOWD_ADMISSION_WAIT_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 2000 }),
  FLOWD_ADMISSION_MAX_WAITERS: Type.Integer({ minimum: 0, maximum: 100_000, default: 512 }),
  // The base of the single-use callback URLs `http` tasks are given (what services reach the API at).
  FLOWD_PUBLIC_URL: Type.Optional(
    Type.String({ pattern: "^https?://[^\\s/?#]+(/[^\\s?#]*[^\\s?#/])?$", hint: "must be an http(s) base URL without a trailing slash, such as https://flowd.example.com" }),
  ),
  FLOWD_CALLBACK_RATE_LIMIT: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 100 }),
  FLOWD_WORKER_STUCK_MS: Type.Integer({ minimum: 500, maximum: 3_600_000, default: 30_000 }),
  FLOWD_WEBHOOK_RETRY_SCHEDULE: Type.String({
    pattern: DurationList,
    default: "5s,5m,30m,2h,5h,10h,10h",
    hint: "must be comma-separated delays such as 5s,5m,30m,2h (units ms, s, m, h; one per retry, up to 49)",
  }),
  FLOWD_WEBHOOK_DISABLE_AFTER_MS: Type.Integer({ minimum: 100, maximum: 365 * 86_400_000, default: 3 * 86_400_000 }),
  FLOWD_MAX_WEBHOOKS_PER_USER: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 100 }),
  // Unset: half of WORKER_CONCURRENCY (at least 1), so other users always keep the other half.
  FLOWD_WEBHOOK_SLOTS_PER_USER: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  FLOWD_SOCKET_BUFFER_LIMIT: Type.Integer({ minimum: 16 * 1024, maximum: 1024 * 1024 * 1024, default: 4 * 1024 * 1024 }),
  FLOWD_SOCKETS_PER_USER: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 64 }),
  FLOWD_SOCKET_SUBSCRIPTIONS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1000 }),
  FLOWD_SOCKET_MESSAGE_RATE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 100 }),
  // `secret`: the value is never repeated in an error message (it would land in logs).
  FLOWD_SECRET_KEY: Type.Optional(
    Type.String({ pattern: SECRET_KEY_PATTERN, secret: true, hint: "must be 32 bytes as base64 (44 characters, e.g. from `openssl rand -base64 32`) or as 64 hex characters" }),
  ),
  // OpenTelemetry's own names, so collectors and operators recognise them.
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(
    Type.String({ pattern: "^https?://[^\\s]+$", hint: "must be an http(s) URL such as http://127.0.0.1:4318 (traces go to <url>/v1/traces)" }),
  ),
  OTEL_SERVICE_NAME: Type.String({ pattern: "^[^\\s]{1,128}$", default: "flowd" }),
});
export type Env = Static<typeof EnvSchema>;

export type LogLevel = Env["LOG_LEVEL"];
export type QueueBackendName = Env["FLOWD_QUEUE_BACKEND"];

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** REDIS_CLUSTER_NODES: seed nodes of a Redis Cluster; empty: a single Redis at redisUrl (which otherwise only gives credentials and TLS). */
  readonly redisClusterNodes: readonly { host: string; port: number }[];
  /** FLOWD_SHARDS: hash-tagged prefixes new work is spread over (src/shards.ts). */
  readonly shards: number;
  /** FLOWD_QUEUE_BACKEND: where BullMQ's queues live; `postgres` opens no Redis connection at all. */
  readonly queueBackend: QueueBackendName;
  /** FLOWD_QUEUE_SCHEMA: the schema of DATABASE_URL's database the Postgres backend keeps its tables in. */
  readonly queueSchema: string;
  /** FLOWD_DATA_DIR: where `flowd dev` keeps its embedded Postgres, its password and the dev token. */
  readonly dataDir: string;
  /** FLOWD_EMBEDDED_POSTGRES_PORT: the loopback port the embedded Postgres listens on. */
  readonly embeddedPostgresPort: number;
  readonly port: number;
  readonly host: string;
  readonly prefix: string;
  readonly flowQueues: readonly string[];
  readonly workerConcurrency: number;
  /** FLOWD_HANDLERS: module files or folders the worker role loads at start; empty: built-ins only. */
  readonly handlerPaths: readonly string[];
  /** FLOWD_EXTERNAL_QUEUES: queues flowd accepts and records but never consumes (users' own BullMQ workers run them). */
  readonly externalQueues: readonly string[];
  readonly allowPrivateUrls: boolean;
  /** FLOWD_CORS_ORIGINS: the browser origins answered with CORS headers; empty: CORS off. */
  readonly corsOrigins: readonly string[];
  readonly logLevel: LogLevel;
  readonly bodyLimit: number;
  readonly maxFlowJobs: number;
  /** Largest JSON result a job run by flowd's workers may return (it is kept in Redis and Postgres, and passed on to dependents). */
  readonly maxResultBytes: number;
  /** FLOWD_BULK_MAX: the most flows or jobs one bulk action may match (400 `bulk_too_large` above it). */
  readonly bulkMax: number;
  readonly maxFlowDepth: number;
  readonly shutdownTimeoutMs: number;
  readonly eventsRetentionHours: number;
  readonly workerHealthPort: number;
  /** How long a worker's hold on a running job lasts without renewal; a dead worker's jobs are free after it. */
  readonly lockDurationMs: number;
  /** How often workers look for jobs whose holder died (stalled), to run them again. */
  readonly stalledIntervalMs: number;
  /** Requests per second per user on each API process (bursts of twice that); 0: no limit. */
  readonly rateLimit: number;
  /**
   * What creates (POST of flows, jobs, schedules) one API process runs at once: how many, the bytes
   * of their bodies, the jobs they hold. A create past any of them waits up to `admissionWaitMs` for
   * room, behind at most `admissionMaxWaiters` others, then answers 503 `overloaded`.
   */
  readonly maxCreatesInFlight: number;
  readonly maxCreateBytesInFlight: number;
  readonly maxCreateJobsInFlight: number;
  readonly admissionWaitMs: number;
  readonly admissionMaxWaiters: number;
  /** How long a queue's next job may wait while this process's idle worker takes nothing, before the worker is replaced. */
  readonly workerStuckMs: number;
  /** How often one worker checks that what Postgres expects in Redis is still there. */
  readonly reconcileIntervalMs: number;
  /** Entries each queue's BullMQ event stream keeps (approximately); a recorder further behind converges from Redis's job states. */
  readonly eventStreamMaxLen: number;
  /** Past this, the oldest unrecorded event makes /readyz say `degraded` and creates are refused as overloaded. */
  readonly recorderMaxLagMs: number;
  /** Delay before each webhook retry (attempts are one more than its length); each gets ±10% jitter. */
  readonly webhookRetryScheduleMs: readonly number[];
  /**
   * FLOWD_PUBLIC_URL: base of the callback URLs `http` tasks are given. Unset: the API's own
   * listen address (`http://HOST:PORT`; for `--role=all` the port actually bound).
   */
  readonly publicUrl: string | undefined;
  /** Callback requests per second per client address on each API process (bursts of twice that); 0: no limit. */
  readonly callbackRateLimit: number;
  /** An endpoint whose every delivery failed for this long is disabled. */
  readonly webhookDisableAfterMs: number;
  /** FLOWD_MAX_WEBHOOKS_PER_USER: one more is refused with 409 `webhook_limit`. */
  readonly maxWebhooksPerUser: number;
  /** Deliveries of one user handed to Redis at once (and of one endpoint; one while it is being retried). */
  readonly webhookSlotsPerUser: number;
  /** Bytes queued for one slow socket before it is closed (it resumes with `after`). */
  readonly socketBufferLimit: number;
  /** Open sockets per user on each API process; the upgrade beyond it is refused (429). */
  readonly socketsPerUser: number;
  /** Flow subscriptions one socket may hold or have waiting (`all` is one more, always allowed). */
  readonly socketSubscriptions: number;
  /** Client messages per second per socket, in bursts of twice that; beyond it the socket is closed (1008). 0: no limit. */
  readonly socketMessageRate: number;
  /** FLOWD_SECRET_KEY decoded: seals webhook secrets at rest (src/secret-box.ts); undefined: stored in clear. */
  readonly secretKey: Uint8Array | undefined;
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the OTLP/HTTP base URL; undefined: no tracing at all. */
  readonly otelEndpoint: string | undefined;
  readonly otelServiceName: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
  }
}

/** Reads the variables flowd knows from `env`; reports every invalid one at once. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== "") raw[key] = value;
  }
  const problems = new Map<string, string>();
  // Convert would quietly turn "80.5" into 80 and "1e3" into 1: integers must be written as such.
  for (const [key, schema] of Object.entries(EnvSchema.properties) as [string, { type?: string }][]) {
    if (schema.type === "integer" && raw[key] !== undefined && !/^\d+$/.test(String(raw[key]))) {
      problems.set(key, `${key}=${JSON.stringify(raw[key])} ${describe(schema as Record<string, unknown>)}`);
      delete raw[key];
    }
  }
  const withDefaults = Value.Default(EnvSchema, raw);
  const converted = Value.Convert(EnvSchema, withDefaults);
  for (const error of Value.Errors(EnvSchema, converted)) {
    const name = error.path.replace(/^\//, "").split("/")[0] ?? error.path;
    if (!problems.has(name))
      problems.set(name, `${error.schema.secret ? name : `${name}=${JSON.stringify(raw[name])}`} ${describe(error.schema)}`);
  }
  const e = converted as Env;
  if (!problems.has("FLOWD_QUEUES")) {
    const reserved = e.FLOWD_QUEUES.split(",").filter((q) => (RESERVED_QUEUES as readonly string[]).includes(q));
    if (reserved.length > 0)
      problems.set("FLOWD_QUEUES", `FLOWD_QUEUES may not name the built-in queues ${reserved.join(", ")}`);
  }
  if (!problems.has("FLOWD_EXTERNAL_QUEUES") && e.FLOWD_EXTERNAL_QUEUES) {
    const flowQueues = problems.has("FLOWD_QUEUES") ? [] : e.FLOWD_QUEUES.split(",");
    const clash = e.FLOWD_EXTERNAL_QUEUES.split(",").filter((q) => (RESERVED_QUEUES as readonly string[]).includes(q) || flowQueues.includes(q));
    if (clash.length > 0)
      problems.set("FLOWD_EXTERNAL_QUEUES", `FLOWD_EXTERNAL_QUEUES may not name queues flowd consumes itself (${clash.join(", ")})`);
  }
  // On a cluster every BullMQ key of a flow must share a slot: one shard needs a hash-tagged prefix.
  if (e.REDIS_CLUSTER_NODES && e.FLOWD_QUEUE_BACKEND !== "postgres" && e.FLOWD_SHARDS === 1 && !problems.has("FLOWD_PREFIX") && !/\{[^}]+\}/.test(e.FLOWD_PREFIX))
    problems.set("FLOWD_PREFIX", `FLOWD_PREFIX=${JSON.stringify(e.FLOWD_PREFIX)} must hold a hash tag such as {flowd} on a Redis Cluster (REDIS_CLUSTER_NODES) with FLOWD_SHARDS=1`);
  // Shards and a cluster spread BullMQ's keys over Redis masters; the Postgres backend has one database.
  if (e.FLOWD_QUEUE_BACKEND === "postgres" && !problems.has("FLOWD_QUEUE_BACKEND")) {
    if (e.FLOWD_SHARDS > 1 && !problems.has("FLOWD_SHARDS"))
      problems.set(
        "FLOWD_SHARDS",
        `FLOWD_SHARDS=${e.FLOWD_SHARDS} cannot be used with FLOWD_QUEUE_BACKEND=postgres: shards spread BullMQ keys over a Redis Cluster's masters, and the Postgres backend keeps every queue in one database (unset FLOWD_SHARDS or use the redis backend)`,
      );
    if (e.REDIS_CLUSTER_NODES && !problems.has("REDIS_CLUSTER_NODES"))
      problems.set("REDIS_CLUSTER_NODES", "REDIS_CLUSTER_NODES cannot be used with FLOWD_QUEUE_BACKEND=postgres: that backend opens no Redis connection (unset it or use the redis backend)");
  }
  // The pattern admits only 32-byte spellings; decoding again here keeps a bad key from ever meaning "no key".
  const secretKey = e.FLOWD_SECRET_KEY === undefined || problems.has("FLOWD_SECRET_KEY") ? undefined : parseSecretKey(e.FLOWD_SECRET_KEY);
  if (secretKey === null) problems.set("FLOWD_SECRET_KEY", "FLOWD_SECRET_KEY does not decode to 32 bytes");
  if (problems.size > 0) throw new ConfigError([...problems.values()]);
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisClusterNodes: Object.freeze(
      (e.REDIS_CLUSTER_NODES?.split(",") ?? []).map((n) => {
        const at = n.lastIndexOf(":");
        return Object.freeze({ host: n.slice(0, at), port: Number(n.slice(at + 1)) });
      }),
    ),
    shards: e.FLOWD_SHARDS,
    queueBackend: e.FLOWD_QUEUE_BACKEND,
    queueSchema: e.FLOWD_QUEUE_SCHEMA,
    dataDir: e.FLOWD_DATA_DIR,
    embeddedPostgresPort: e.FLOWD_EMBEDDED_POSTGRES_PORT,
    port: e.PORT,
    host: e.HOST,
    prefix: e.FLOWD_PREFIX,
    flowQueues: Object.freeze([...new Set(e.FLOWD_QUEUES.split(","))]),
    workerConcurrency: e.WORKER_CONCURRENCY,
    handlerPaths: Object.freeze(e.FLOWD_HANDLERS?.split(",").map((p) => p.trim()).filter(Boolean) ?? []),
    externalQueues: Object.freeze([...new Set(e.FLOWD_EXTERNAL_QUEUES?.split(",") ?? [])]),
    allowPrivateUrls: e.FLOWD_ALLOW_PRIVATE_URLS,
    corsOrigins: Object.freeze(e.FLOWD_CORS_ORIGINS?.split(",") ?? []),
    logLevel: e.LOG_LEVEL,
    bodyLimit: e.FLOWD_BODY_LIMIT,
    maxFlowJobs: e.FLOWD_MAX_FLOW_JOBS,
    maxResultBytes: e.FLOWD_MAX_RESULT_BYTES,
    bulkMax: e.FLOWD_BULK_MAX,
    maxFlowDepth: e.FLOWD_MAX_FLOW_DEPTH,
    shutdownTimeoutMs: e.FLOWD_SHUTDOWN_TIMEOUT_MS,
    eventsRetentionHours: e.FLOWD_EVENTS_RETENTION_HOURS,
    workerHealthPort: e.WORKER_HEALTH_PORT,
    socketBufferLimit: e.FLOWD_SOCKET_BUFFER_LIMIT,
    socketsPerUser: e.FLOWD_SOCKETS_PER_USER,
    socketSubscriptions: e.FLOWD_SOCKET_SUBSCRIPTIONS,
    socketMessageRate: e.FLOWD_SOCKET_MESSAGE_RATE,
    secretKey: secretKey ?? undefined,
    otelEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    otelServiceName: e.OTEL_SERVICE_NAME,
    lockDurationMs: e.FLOWD_LOCK_DURATION_MS,
    reconcileIntervalMs: e.FLOWD_RECONCILE_INTERVAL_MS,
    eventStreamMaxLen: e.FLOWD_EVENT_STREAM_MAX_LEN,
    recorderMaxLagMs: e.FLOWD_RECORDER_MAX_LAG_MS,
    webhookRetryScheduleMs: Object.freeze(parseDurations(e.FLOWD_WEBHOOK_RETRY_SCHEDULE)),
    publicUrl: e.FLOWD_PUBLIC_URL,
    callbackRateLimit: e.FLOWD_CALLBACK_RATE_LIMIT,
    webhookDisableAfterMs: e.FLOWD_WEBHOOK_DISABLE_AFTER_MS,
    maxWebhooksPerUser: e.FLOWD_MAX_WEBHOOKS_PER_USER,
    webhookSlotsPerUser: e.FLOWD_WEBHOOK_SLOTS_PER_USER ?? Math.max(1, Math.floor(e.WORKER_CONCURRENCY / 2)),
    stalledIntervalMs: e.FLOWD_STALLED_INTERVAL_MS,
    workerStuckMs: e.FLOWD_WORKER_STUCK_MS,
    rateLimit: e.FLOWD_RATE_LIMIT,
    maxCreatesInFlight: e.FLOWD_MAX_CREATES_IN_FLIGHT,
    maxCreateBytesInFlight: e.FLOWD_MAX_CREATE_BYTES_IN_FLIGHT,
    maxCreateJobsInFlight: e.FLOWD_MAX_CREATE_JOBS_IN_FLIGHT,
    admissionWaitMs: e.FLOWD_ADMISSION_WAIT_MS,
    admissionMaxWaiters: e.FLOWD_ADMISSION_MAX_WAITERS,
  });
}

function describe(schema: Record<string, unknown>): string {
  if (typeof schema.hint === "string") return schema.hint;
  if (schema.type === "integer")
    return `must be an integer between ${schema.minimum} and ${schema.maximum}`;
  if (schema.type === "boolean") return "must be true or false";
  if (Array.isArray(schema.anyOf))
    return `must be one of ${schema.anyOf.map((s: { const?: unknown }) => s.const).join(", ")}`;
  if (typeof schema.pattern === "string") return `must match ${schema.pattern}`;
  return "is invalid";
}

/** What one flowd process runs: `--role=`. */
export type Role = "all" | "api" | "worker";
