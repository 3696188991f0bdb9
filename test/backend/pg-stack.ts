import postgres from "postgres";
import { createToken } from "../../src/services/tokens";
import { createTestDatabase } from "../helpers/db";
import { spawnFlowd, type FlowdProcess } from "../helpers/process";
import { httpClient } from "../helpers/http";
import { testPort } from "../helpers/ports";
import { backendEnv } from "../helpers/cluster";

/**
 * flowd on the Postgres backend (FLOWD_QUEUE_BACKEND=postgres), in processes of its own, on a
 * database of this test file's. REDIS_URL points at a loopback port where nothing listens: any
 * Redis connection would fail (and a start-up that needed Redis would exit with one line), so a
 * run that works shows Redis is not needed.
 */
export async function startPgStack(opts: { env?: Record<string, string>; role?: "all" | "split"; workerEnv?: Record<string, string> } = {}) {
  const db = await createTestDatabase();
  const port = testPort();
  const backend = backendEnv("postgres");
  const deadRedisPort = Number(new URL(backend.REDIS_URL!).port);
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    ...backend,
    PORT: String(port),
    LOG_LEVEL: "info",
    FLOWD_ALLOW_PRIVATE_URLS: "true",
    FLOWD_SHUTDOWN_TIMEOUT_MS: "15000",
    // A worker process's http tasks call back to the API process.
    FLOWD_PUBLIC_URL: `http://127.0.0.1:${port}`,
    ...opts.env,
  };
  const procs: FlowdProcess[] = [];
  const start = async (role: string, extra: Record<string, string> = {}) => {
    const p = spawnFlowd([`--role=${role}`], { ...env, ...extra });
    procs.push(p);
    await p.waitForLine(/"flowd ready"/, 60_000);
    return p;
  };
  if (opts.role === "split") {
    await start("api");
    await start("worker", { PORT: "0", ...opts.workerEnv });
  } else await start("all");
  const { token } = await createToken(db.database.db, "alice");
  const baseUrl = `http://127.0.0.1:${port}`;
  const admin = postgres(db.url, { max: 2, onnotice: () => {} });
  return {
    db,
    env,
    port,
    deadRedisPort,
    procs,
    token,
    baseUrl,
    http: httpClient(baseUrl, token),
    sql: admin,
    start,
    /** Every line the processes logged, for checks that no Redis connection was tried. */
    logs: () => procs.map((p) => p.lines.join("\n") + p.stderr()).join("\n"),
    async stop() {
      await Promise.all(procs.map((p) => p.stop("SIGTERM")));
      await admin.end({ timeout: 1 });
      await db.drop();
    },
  };
}
export type PgStack = Awaited<ReturnType<typeof startPgStack>>;

export { mentionsRedisError } from "../helpers/cluster";
