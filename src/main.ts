import type { Config } from "./config";
import { createDb, ensureDatabase, type Database } from "./db/client";
import { migrate } from "./db/migrate";
import { createLifecycle } from "./lifecycle";
import type { Logger } from "./log";
import type { Role } from "./config";
import { checkRedis, type SlotRange } from "./redis";
import { createToken } from "./services/tokens";
import { hasAnyToken } from "./db/queries/users";
import { startApi } from "./api/start";
import { startWorkers } from "./workers/start";
import { startRecording } from "./workers/recording";
import { loadModules } from "./handlers/loader";
import { checkModuleDefinitions, storeModuleDefinitions } from "./workers/module-definitions";
import { consumedQueues } from "./queues";
import { configuredShards, shardPrefix } from "./shards";
import { shardSpread, spreadShortfall } from "./services/shard-spread";
import { sealPlaintextSecrets } from "./services/webhooks";
import { sealPlaintextSigningSecrets } from "./services/signing-secrets";
import { createMetrics } from "./metrics";
import { startTelemetry } from "./telemetry";
import { openPgQueues } from "./pg-queues";

/** Every command that touches the database goes through here: create it if missing, then migrate. */
export async function openDatabase(config: Config, log: Logger, max?: number): Promise<Database> {
  await ensureDatabase(config.databaseUrl);
  const database = createDb(config.databaseUrl, { max });
  await migrate(database.sql, log);
  return database;
}

export async function runMigrate(config: Config, log: Logger): Promise<number> {
  await ensureDatabase(config.databaseUrl);
  const database = createDb(config.databaseUrl, { max: 1 });
  try {
    const applied = await migrate(database.sql, log);
    log.info("migrations up to date", { applied });
    return 0;
  } finally {
    await database.close();
  }
}

export async function runTokenCreate(config: Config, log: Logger, user: string): Promise<number> {
  const database = await openDatabase(config, log, 1);
  try {
    const { token, prefix } = await createToken(database.db, user);
    process.stderr.write(`Created a token for user '${user}' (prefix ${prefix}). It is shown once; store it now.\n`);
    process.stdout.write(`${token}\n`);
    return 0;
  } finally {
    await database.close();
  }
}

/** The shards' key prefixes (your own BullMQ workers consume each), and a warning when a cluster master holds none of them. */
function logShards(config: Config, log: Logger, slotRanges: SlotRange[] | null) {
  const shardPrefixes = configuredShards(config.shards).map((s) => shardPrefix(config.prefix, s));
  if (config.shards > 1) log.info("BullMQ keys spread over shards", { shardPrefixes });
  const spread = slotRanges && shardSpread(slotRanges, config);
  const idleMasters = spread && spreadShortfall(spread);
  if (idleMasters) log.warn(idleMasters, { ...spread, shardPrefixes });
}

/** Runs a role until SIGTERM/SIGINT; the second signal or the shutdown timer forces the exit. */
export async function runService(config: Config, rootLog: Logger, role: Role, hooks: { onReady?: (info: { apiUrl?: string }) => void } = {}): Promise<number> {
  const log = rootLog.child({ role });
  const started = performance.now();
  // User code first: a bad module stops the process before it has connected to anything.
  const loaded = role === "api" ? { handlers: [], definitions: [] } : await loadModules(config.handlerPaths, consumedQueues(config));
  const modules = loaded.handlers;
  const moduleDefinitions = checkModuleDefinitions(loaded.definitions, config, modules);
  if (modules.length > 0) log.info("handler modules loaded", { handlers: modules.map((h) => h.name) });
  // The one place the queue backend is chosen: every part below is handed `pg` (or opens Redis).
  const onPostgres = config.queueBackend === "postgres";
  if (!onPostgres) {
    const redisInfo = await checkRedis(config);
    if (redisInfo.maxmemoryPolicy && redisInfo.maxmemoryPolicy !== "noeviction")
      log.warn("Redis maxmemory-policy is not noeviction: Redis may evict BullMQ keys under memory pressure and lose jobs", {
        maxmemoryPolicy: redisInfo.maxmemoryPolicy,
      });
    logShards(config, log, redisInfo.slotRanges);
  }
  catchStrayErrors(log);
  const database = await openDatabase(config, log);
  const lifecycle = createLifecycle(log);
  lifecycle.add("postgres", () => database.close());
  // One pool for every BullMQ object of the process; each Worker (one per queue) keeps a client for LISTEN.
  const pg = onPostgres ? await openPgQueues(config, log, role === "api" ? 0 : config.flowQueues.length + 3) : null;
  if (pg) {
    lifecycle.add("bullmq-postgres", () => pg.close());
    log.info("BullMQ runs on its Postgres backend; no Redis connection is opened", { schema: pg.schema });
  }
  // Before anything that makes a BullMQ producer: its telemetry is chosen when it is built.
  lifecycle.add("telemetry", (await startTelemetry(config, log)).stop);
  // One registry per process, so `--role=all` shows HTTP and job metrics together.
  const metrics = createMetrics();
  // With --role=all the workers' callback URLs point at this process's API once it listens (PORT=0 included).
  let apiUrl: string | undefined;
  try {
    await guardSecrets(config, database, log, role);
    const publicUrl = () => config.publicUrl ?? apiUrl ?? `http://${config.host}:${config.port}`;
    if (role === "worker" || role === "all") {
      await storeModuleDefinitions(database.db, moduleDefinitions, log);
      const workers = await startWorkers({ config, database, log, metrics, modules, publicUrl, pg });
      lifecycle.add("workers", workers.stop);
    }
    if (role === "api" || role === "all") {
      const api = await startApi({ config, database, log, metrics, pg });
      apiUrl = api.url;
      lifecycle.add("api", api.stop);
    }
    if (role === "api") {
      // On standby for the recorder lease: with only API processes and users' own BullMQ workers
      // running, statuses still reach Postgres.
      for (const shard of configuredShards(config.shards)) {
        const recording = startRecording({ config, database, log, metrics, standby: true, shard, pg });
        lifecycle.add("recorder", recording.stop);
      }
    }
  } catch (err) {
    await lifecycle.stopAll();
    throw err;
  }
  log.info("flowd ready", { startupMs: Math.round(performance.now() - started), port: role === "worker" ? undefined : config.port });
  if (role !== "worker" && !(await hasAnyToken(database.db)))
    log.info("no API token exists yet; create one with: flowd token create --user NAME (from a checkout: bun run start -- token create --user NAME)");
  hooks.onReady?.({ apiUrl });

  return new Promise<number>((resolve) => {
    const shutdown = (signal: string) => {
      if (lifecycle.stopping) {
        log.warn("second signal; exiting now", { signal });
        process.exit(130);
      }
      log.info("shutting down", { signal });
      // The bound is part of the contract, not a failure: jobs still running are released by their
      // lock and run again on another worker, so the exit is still 0.
      const timer = setTimeout(() => {
        log.warn("shutdown bound reached; exiting with jobs still running (they will run again elsewhere)", { timeoutMs: config.shutdownTimeoutMs });
        process.exit(0);
      }, config.shutdownTimeoutMs);
      timer.unref();
      lifecycle.stopAll().then(() => {
        log.info("stopped");
        resolve(0);
      });
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  });
}

/** Every role reads or writes webhook secrets: without a key it says so once; with one, workers seal what is still in clear. */
async function guardSecrets(config: Config, database: Database, log: Logger, role: Role) {
  if (!config.secretKey) {
    log.warn("FLOWD_SECRET_KEY is not set: webhook secrets are stored unencrypted; set it to a 32-byte base64 key");
    return;
  }
  if (role === "api") return;
  const sealed = await sealPlaintextSecrets({ db: database.db, config });
  if (sealed > 0) log.info("sealed webhook secrets stored in clear with FLOWD_SECRET_KEY", { sealed });
  const signing = await sealPlaintextSigningSecrets({ db: database.db, config });
  if (signing > 0) log.info("sealed http task signing secrets stored in clear with FLOWD_SECRET_KEY", { sealed: signing });
}

/**
 * Errors thrown from a driver's socket callbacks after its connection died (postgres.js writing to
 * a socket a terminated backend closed) reach no caller. Every flowd loop bounds and retries its
 * own calls, and Postgres holds the truth, so the process logs them as JSON and carries on rather
 * than printing a raw stack or dying.
 */
function catchStrayErrors(log: Logger) {
  const stray = log.child({ component: "process" });
  process.on("uncaughtException", (err) => stray.error("an error escaped its caller; carrying on", { err }));
  process.on("unhandledRejection", (err) => stray.error("a rejected promise had no handler; carrying on", { err }));
}
