import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { loadConfig } from "../../src/config";
import { createDb, type Database } from "../../src/db/client";
import { createLogger } from "../../src/log";
import { startWorkers } from "../../src/workers/start";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

/**
 * A parked wait step holds nothing in its worker's memory: BullMQ keeps the job in Redis as
 * delayed and its wait is a Postgres row, so nothing in the worker process (a map of jobs, a timer,
 * a closure, a logger) may grow with the steps parked, nor with the steps that ended. The worker runs
 * in this process (the API in its own), and its heap's objects are counted after full collections:
 * idle, with N steps parked, and after all N have finished.
 */
const N = 1_000;
let c: Cluster;
let database: Database;
let workers: Awaited<ReturnType<typeof startWorkers>>;

beforeAll(async () => {
  c = await startCluster({ apis: 1, workers: 0, tag: "pmem" });
  database = createDb(c.env.DATABASE_URL!, { max: 10 });
  workers = await startWorkers({ config: loadConfig({ ...c.env, WORKER_CONCURRENCY: "16" }), database, log: createLogger("silent") });
}, 120_000);
afterAll(async () => {
  await workers?.stop();
  await database?.close();
  await c?.stop();
}, 60_000);

const http = () => c.apis[0]!.http;

/** Live objects by type after full collections. */
function liveObjects() {
  for (let i = 0; i < 3; i++) Bun.gc(true);
  const s = heapStats();
  return { count: s.objectCount, types: s.objectTypeCounts as Record<string, number>, heapMiB: s.heapSize / 1048576 };
}

/** The object types that grew most from `a` to `b`, for a failure's message. */
const grown = (a: ReturnType<typeof liveObjects>, b: ReturnType<typeof liveObjects>) =>
  Object.keys(b.types)
    .map((t) => [t, (b.types[t] ?? 0) - (a.types[t] ?? 0)] as const)
    .filter(([, d]) => d > 0)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 10)
    .map(([t, d]) => `${t} +${d}`)
    .join(", ");

const count = async (where: string) => Number((await c.database.sql.unsafe(`select count(*)::int as n from jobs where ${where}`))[0]!.n);

/** Creates `n` signal steps waiting on `key`, a bulk of 1,000 at a time. */
async function parkSignals(n: number, key: string) {
  for (let i = 0; i < n; i += 1000) {
    const res = await http()("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: Math.min(1000, n - i) }, () => ({ name: "signal", data: { key } })) });
    expect(res.status).toBe(201);
  }
}

/** Signals every step waiting on `key` (1,000 a call) until none is left. */
async function signalAll(key: string) {
  for (;;) {
    const res = await http()("POST", "/v1/signals", { key, payload: { ok: true } });
    expect(res.status).toBe(200);
    if (res.body.jobs.length === 0) return;
  }
}

describe("a worker's memory with parked wait steps", () => {
  test(`${N} parked signal steps, and the same steps finished, leave no objects behind in the worker`, async () => {
    // Warm every path (prepared statements, compiled code, connection pools) with a full round first.
    await parkSignals(100, "warm");
    await waitFor(async () => (await count(`status = 'active' and waiting_for = 'signal'`)) === 100, 60_000, "100 warm-up steps to park", 200);
    await signalAll("warm");
    await waitFor(async () => (await count(`status = 'completed'`)) === 100, 60_000, "the warm-up steps to finish", 200);
    await Bun.sleep(500);
    const idle = liveObjects();

    await parkSignals(N, "k");
    await waitFor(async () => (await count(`status = 'active' and waiting_for = 'signal'`)) === N, 120_000, `${N} steps to park`, 200);
    await Bun.sleep(500);
    const parked = liveObjects();

    await signalAll("k");
    await waitFor(async () => (await count(`status = 'completed'`)) === N + 100, 120_000, `${N} steps to finish`, 200);
    await Bun.sleep(500);
    const finished = liveObjects();

    console.log(
      `worker heap: idle ${idle.count} objects (${idle.heapMiB.toFixed(1)} MiB), ${N} parked ${parked.count} (${parked.heapMiB.toFixed(1)} MiB), ` +
        `finished ${finished.count} (${finished.heapMiB.toFixed(1)} MiB)`,
    );
    // Anything kept per step (a map entry with its value is two objects or more) would add thousands.
    expect(parked.count - idle.count, `grown with ${N} parked: ${grown(idle, parked)}`).toBeLessThan(N / 4);
    expect(finished.count - idle.count, `grown after ${N} finished: ${grown(idle, finished)}`).toBeLessThan(N / 4);
  }, 300_000);
});
