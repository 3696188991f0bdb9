import { createToken } from "../../src/services/tokens";
import { createTestDatabase } from "./db";
import { httpClient } from "./http";
import { spawnFlowd, type FlowdProcess } from "./process";
import { deletePrefix, uniquePrefix } from "./redis";
import { REDIS_URL } from "./services";
import { testPort } from "./ports";

export type QueueBackend = "redis" | "postgres";

/**
 * The environment that picks a queue backend. On postgres, REDIS_URL points at a loopback port
 * where nothing listens: any Redis connection would fail, so a run that works shows none is needed.
 */
export function backendEnv(backend: QueueBackend): Record<string, string> {
  return backend === "postgres" ? { FLOWD_QUEUE_BACKEND: "postgres", REDIS_URL: `redis://127.0.0.1:${testPort()}` } : {};
}

/** Nothing in the logs says a Redis connection was tried. */
export const mentionsRedisError = (logs: string) => /Redis connection error|ECONNREFUSED|cannot reach Redis/.test(logs);

export interface ApiProcess {
  proc: FlowdProcess;
  url: string;
  wsUrl: string;
  http: ReturnType<typeof httpClient>;
}

/**
 * Real flowd processes sharing one database and prefix: `apis` API processes and `workers`
 * worker processes — the deployment SPEC describes, in miniature — on either queue backend.
 */
export async function startCluster(
  opts: { apis?: number; workers?: number; env?: Record<string, string>; tag?: string; backend?: QueueBackend } = {},
) {
  const db = await createTestDatabase();
  const prefix = uniquePrefix(opts.tag ?? "c");
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL,
    FLOWD_PREFIX: prefix,
    PORT: "0",
    LOG_LEVEL: "info",
    FLOWD_ALLOW_PRIVATE_URLS: "true",
    ...backendEnv(opts.backend ?? "redis"),
    ...opts.env,
  };
  const { token } = await createToken(db.database.db, "alice");
  const apis: ApiProcess[] = [];
  const workers: FlowdProcess[] = [];
  const cluster = {
    env,
    prefix,
    database: db.database,
    databaseUrl: db.url,
    token,
    apis,
    workers,
    newUser: async (name: string) => (await createToken(db.database.db, name)).token,
    /** An API process on the cluster's environment, with `extraEnv` on top (e.g. a Postgres behind a proxy). */
    async startApi(extraEnv: Record<string, string> = {}): Promise<ApiProcess> {
      const proc = spawnFlowd(["--role=api"], { ...env, ...extraEnv });
      const line = await proc.waitForLine(/"listening"/, 60_000);
      const url = (JSON.parse(line) as { url: string }).url;
      await proc.waitForLine(/"flowd ready"/, 60_000);
      const api = { proc, url, wsUrl: url.replace(/^http/, "ws") + "/v1/ws", http: httpClient(url, token) };
      apis.push(api);
      return api;
    },
    async startWorker(extraEnv: Record<string, string> = {}): Promise<FlowdProcess> {
      const proc = spawnFlowd(["--role=worker"], { ...env, ...extraEnv });
      await proc.waitForLine(/"flowd ready"/, 60_000);
      workers.push(proc);
      return proc;
    },
    /**
     * A worker process with a health port of its own, at its `base` URL. Another process may hold a
     * port picked at random by chance, so a few are tried.
     */
    async startWorkerWithHealthPort(extraEnv: Record<string, string> = {}): Promise<{ proc: FlowdProcess; base: string }> {
      for (let attempt = 0; ; attempt++) {
        const port = testPort();
        const proc = spawnFlowd(["--role=worker"], { ...env, ...extraEnv, WORKER_HEALTH_PORT: String(port) });
        try {
          await proc.waitForLine(/"flowd ready"/, 60_000);
          workers.push(proc);
          return { proc, base: `http://127.0.0.1:${port}` };
        } catch (err) {
          await proc.stop("SIGKILL");
          if (attempt >= 4) throw err;
        }
      }
    },
    /** Every line the processes logged. */
    logs: () => [...apis.map((a) => a.proc), ...workers].map((p) => p.lines.join("\n") + p.stderr()).join("\n"),
    async stop() {
      await Promise.all([...apis.map((a) => a.proc.stop("SIGTERM")), ...workers.map((w) => w.stop("SIGTERM"))]);
      await deletePrefix(prefix);
      await db.drop();
    },
  };
  await Promise.all([
    ...Array.from({ length: opts.apis ?? 1 }, () => cluster.startApi()),
    ...Array.from({ length: opts.workers ?? 1 }, () => cluster.startWorker()),
  ]);
  return cluster;
}
export type Cluster = Awaited<ReturnType<typeof startCluster>>;
