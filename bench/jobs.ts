/**
 * Single jobs: POST /v1/jobs throughput and end-to-end jobs/s through flowd (api and worker as
 * separate processes) against plain `Queue.add` + `Worker` on the same Redis, same concurrency.
 */
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";
import { startCluster } from "../test/helpers/cluster";
import { deletePrefix, uniquePrefix } from "../test/helpers/redis";
import { checkServices, ensureTemplate, REDIS_URL } from "../test/helpers/services";
import { printConditions, ratio } from "./stats";

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const CONCURRENCY = 16;
const CLIENTS = 16;

/** Runs `fn(i)` for i < n with `clients` calls in flight; returns the seconds it took. */
async function inFlight(n: number, clients: number, fn: (i: number) => Promise<unknown>) {
  let next = 0;
  const t = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < n) await fn(next++);
  }));
  return (performance.now() - t) / 1000;
}

async function plain() {
  const prefix = uniquePrefix("bjobs");
  const conn = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue("jobs", { connection: conn, prefix });
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  const worker = new Worker("jobs", async (job) => ({ data: job.data, children: {} }), {
    connection: new IORedis(REDIS_URL, { maxRetriesPerRequest: null }),
    prefix,
    concurrency: CONCURRENCY,
  });
  worker.on("completed", () => ++done === JOBS && allDone());
  const t = performance.now();
  const addSeconds = await inFlight(JOBS, CLIENTS, (i) => queue.add("echo", { i }));
  await finished;
  const totalSeconds = (performance.now() - t) / 1000;
  await worker.close();
  await queue.close();
  conn.disconnect();
  await deletePrefix(prefix);
  return { addRate: JOBS / addSeconds, endToEnd: JOBS / totalSeconds };
}

async function flowd() {
  const cluster = await startCluster({ apis: 1, workers: 1, tag: "bjobs", env: { WORKER_CONCURRENCY: String(CONCURRENCY) } });
  const api = cluster.apis[0]!;
  const t = performance.now();
  const addSeconds = await inFlight(JOBS, CLIENTS, async (i) => {
    const res = await api.http("POST", "/v1/jobs", { name: "echo", data: { i } });
    if (res.status !== 201) throw new Error(`POST /v1/jobs answered ${res.status}`);
  });
  // Done when Postgres, the source of truth, says so.
  for (;;) {
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where status = 'completed'`;
    if ((row?.n ?? 0) >= JOBS) break;
    await Bun.sleep(10);
  }
  const totalSeconds = (performance.now() - t) / 1000;
  await cluster.stop();
  return { addRate: JOBS / addSeconds, endToEnd: JOBS / totalSeconds };
}

export async function benchJobs() {
  await checkServices();
  await ensureTemplate();
  printConditions("single jobs: POST /v1/jobs vs Queue.add, end to end vs Queue.add + Worker", {
    jobs: JOBS,
    concurrency: CONCURRENCY,
    clients: CLIENTS,
  });
  const b = await plain();
  const f = await flowd();
  console.log(`create      plain Queue.add ${b.addRate.toFixed(0)}/s | POST /v1/jobs ${f.addRate.toFixed(0)}/s | ratio ${ratio(f.addRate, b.addRate)}`);
  console.log(`end to end  plain ${b.endToEnd.toFixed(0)} jobs/s | flowd ${f.endToEnd.toFixed(0)} jobs/s (completed in Postgres) | ratio ${ratio(f.endToEnd, b.endToEnd)}`);
}

if (import.meta.main) await benchJobs();
