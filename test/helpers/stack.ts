import { loadConfig, type Config } from "../../src/config";
import { createLogger } from "../../src/log";
import { startApi } from "../../src/api/start";
import { createToken } from "../../src/services/tokens";
import { createTestDatabase } from "./db";
import { deletePrefix, uniquePrefix } from "./redis";
import { spawnFlowd, type FlowdProcess } from "./process";
import { REDIS_URL } from "./services";
import { httpClient } from "./http";

export interface Stack {
  config: Config;
  env: Record<string, string>;
  database: Awaited<ReturnType<typeof createTestDatabase>>["database"];
  api: Awaited<ReturnType<typeof startApi>>;
  baseUrl: string;
  token: string;
  workers: FlowdProcess[];
  /** Calls the API as the stack's user (or with `token`). */
  http: ReturnType<typeof httpClient>;
  newUser(name: string): Promise<string>;
  startWorker(extraEnv?: Record<string, string>): Promise<FlowdProcess>;
  stop(): Promise<void>;
}

/**
 * The API in this process (on a free port, with its real listener) and `workers` worker processes
 * of their own, on a database and BullMQ prefix that belong to this test file alone.
 */
export async function startStack(opts: { workers?: number; env?: Record<string, string>; tag?: string } = {}): Promise<Stack> {
  const db = await createTestDatabase();
  const prefix = uniquePrefix(opts.tag ?? "s");
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL,
    FLOWD_PREFIX: prefix,
    PORT: "0",
    LOG_LEVEL: "warn",
    FLOWD_ALLOW_PRIVATE_URLS: "true",
    FLOWD_SHUTDOWN_TIMEOUT_MS: "15000",
    ...opts.env,
  };
  const config = loadConfig(env);
  const api = await startApi({ config, database: db.database, log: createLogger((process.env.TEST_LOG_LEVEL as "debug" | undefined) ?? "silent") });
  const baseUrl = `http://127.0.0.1:${api.app.server!.port}`;
  const { token } = await createToken(db.database.db, "alice");
  const workers: FlowdProcess[] = [];
  const stack: Stack = {
    config,
    env,
    database: db.database,
    api,
    baseUrl,
    token,
    workers,
    http: httpClient(baseUrl, token),
    async newUser(name) {
      return (await createToken(db.database.db, name)).token;
    },
    async startWorker(extraEnv = {}) {
      const w = spawnFlowd(["--role=worker"], { ...env, LOG_LEVEL: "info", ...extraEnv });
      await w.waitForLine(/"flowd ready"/);
      workers.push(w);
      return w;
    },
    async stop() {
      await Promise.all(workers.map((w) => w.stop("SIGTERM")));
      await api.stop();
      await deletePrefix(prefix);
      await db.drop();
    },
  };
  for (let i = 0; i < (opts.workers ?? 1); i++) await stack.startWorker();
  return stack;
}
