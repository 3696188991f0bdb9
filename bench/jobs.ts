/**
 * Single jobs: POST /v1/jobs throughput and end-to-end jobs/s through flowd (api and worker as
 * separate processes) against plain `Queue.add` + `Worker` on the same Redis, same concurrency.
 */
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";
import { startCluster } from "../test/helpers/cluster";
import { deletePrefix, uniquePrefix } from "../test/helpers/redis";
import { checkServices, ensureTemplate, REDIS_URL } from "../test/helpers/services";
import { clusterProcesses, cpuSeconds, postgresWrites, printConditions, ratio } from "./stats";

const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
/** Jobs per bulk create (the most one request takes), and how many bulks each side runs. */
const BULK = 1000;
const BULKS = Number(process.env.BENCH_BULKS ?? 5);
const CONCURRENCY = 16;
const CLIENTS = 16;
/** Creates run (and finished) on each side before anything is timed: a fresh process runs cold code. */
const WARMUP = 200;

/** Runs `fn(i)` for i < n with `clients` calls in flight; returns the seconds it took. */
async function inFlight(n: number, clients: number, fn: (i: number) => Promise<unknown>) {
  let next = 0;
  const t = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < n) await fn(next++);
  }));
  return (performance.now() - t) / 1000;
}

/** The whole machine's busy CPU seconds, from /proc/stat. */
const machineCpu = async () => (await cpuSeconds({})).machine!;

async function plain() {
  const cpu0 = await machineCpu();
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
  worker.on("completed", () => ++done === WARMUP + JOBS && allDone());
  await inFlight(WARMUP, CLIENTS, (i) => queue.add("echo", { i }));
  while (done < WARMUP) await Bun.sleep(5);
  const t = performance.now();
  const addSeconds = await inFlight(JOBS, CLIENTS, (i) => queue.add("echo", { i }));
  await finished;
  const totalSeconds = (performance.now() - t) / 1000;
  const cpu = (await machineCpu()) - cpu0;
  const bulk = await plainBulk(queue, () => done);
  await worker.close();
  await queue.close();
  conn.disconnect();
  await deletePrefix(prefix);
  return { addRate: JOBS / addSeconds, endToEnd: JOBS / totalSeconds, cpu, bulk };
}

/** BULKS rounds of one `Queue.addBulk` of BULK jobs, each timed until the worker finished them all. */
async function plainBulk(queue: Queue, completed: () => number) {
  const cpu0 = await machineCpu();
  const t = performance.now();
  for (let round = 0; round < BULKS; round++) {
    const target = completed() + BULK;
    await queue.addBulk(Array.from({ length: BULK }, (_, i) => ({ name: "echo", data: { round, i } })));
    while (completed() < target) await Bun.sleep(2);
  }
  return { rate: (BULKS * BULK) / ((performance.now() - t) / 1000), cpu: (await machineCpu()) - cpu0 };
}

/** Redis commands run so far, by command (INFO commandstats): the same server serves both sides. */
async function redisCalls(redis: IORedis): Promise<number> {
  const text = await redis.info("commandstats");
  return [...text.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/**
 * What one job costs, counted over a run of `jobs`: CPU ms per process group, Postgres commits and
 * rows written (this database's statistics), and Redis commands (the whole server's).
 */
async function workPerJob(cluster: Awaited<ReturnType<typeof startCluster>>, redis: IORedis) {
  const groups = await clusterProcesses(cluster, "bench");
  const pg = () => postgresWrites(cluster.database.sql);
  const before = { cpu: await cpuSeconds(groups), pg: await pg(), redis: await redisCalls(redis) };
  return async (jobs: number) => {
    // The statistics collector publishes a backend's counts when its transaction ends, within a second.
    await Bun.sleep(1_000);
    const cpu = await cpuSeconds(groups);
    const after = await pg();
    const per = (a: number, b: number) => ((a - b) / jobs).toFixed(2);
    const cpuMs = Object.keys(cpu).map((k) => `${k} ${(((cpu[k]! - before.cpu[k]!) / jobs) * 1000).toFixed(3)}`).join(", ");
    return `CPU ms per job: ${cpuMs} | per job: ${per(after.commits, before.pg.commits)} Postgres commits, ` +
      `${per(after.rows, before.pg.rows)} rows written, ${per(await redisCalls(redis), before.redis)} Redis commands`;
  };
}

async function flowd() {
  const cluster = await startCluster({ apis: 1, workers: 1, tag: "bjobs", env: { WORKER_CONCURRENCY: String(CONCURRENCY) } });
  const api = cluster.apis[0]!;
  const create = async (i: number) => {
    const res = await api.http("POST", "/v1/jobs", { name: "echo", data: { i } });
    if (res.status !== 201) throw new Error(`POST /v1/jobs answered ${res.status}`);
  };
  const completed = async () =>
    (await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where status = 'completed'`)[0]!.n;
  await inFlight(WARMUP, CLIENTS, create);
  while ((await completed()) < WARMUP) await Bun.sleep(10);
  const redis = new IORedis(REDIS_URL);
  const work = await workPerJob(cluster, redis);
  const cpu0 = await machineCpu();
  const t = performance.now();
  const addSeconds = await inFlight(JOBS, CLIENTS, create);
  // Done when Postgres, the source of truth, says so.
  while ((await completed()) < WARMUP + JOBS) await Bun.sleep(10);
  const totalSeconds = (performance.now() - t) / 1000;
  const cpu = (await machineCpu()) - cpu0;
  const singleWork = await work(JOBS);
  const bulkWork = await workPerJob(cluster, redis);
  const bulk = await flowdBulk(cluster);
  const work2 = await bulkWork(BULKS * BULK);
  redis.disconnect();
  await cluster.stop();
  return { addRate: JOBS / addSeconds, endToEnd: JOBS / totalSeconds, cpu, bulk: { ...bulk, work: work2 }, work: singleWork };
}

/** BULKS rounds of one `POST /v1/jobs/bulk` of BULK jobs, each timed until Postgres shows them all completed. */
async function flowdBulk(cluster: Awaited<ReturnType<typeof startCluster>>) {
  const api = cluster.apis[0]!;
  const completed = async () =>
    (await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where status = 'completed'`)[0]!.n;
  const cpu0 = await machineCpu();
  const t = performance.now();
  for (let round = 0; round < BULKS; round++) {
    const target = (await completed()) + BULK;
    const res = await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: BULK }, (_, i) => ({ name: "echo", data: { round, i } })) });
    if (res.status !== 201) throw new Error(`POST /v1/jobs/bulk answered ${res.status}`);
    while ((await completed()) < target) await Bun.sleep(5);
  }
  return { rate: (BULKS * BULK) / ((performance.now() - t) / 1000), cpu: (await machineCpu()) - cpu0 };
}

export async function benchJobs() {
  await checkServices();
  await ensureTemplate();
  printConditions("single jobs: POST /v1/jobs vs Queue.add, end to end vs Queue.add + Worker", {
    jobs: JOBS,
    concurrency: CONCURRENCY,
    clients: CLIENTS,
    bulk: `${BULKS} x ${BULK}`,
    warmup: WARMUP,
  });
  const b = await plain();
  const f = await flowd();
  console.log(`create      plain Queue.add ${b.addRate.toFixed(0)}/s | POST /v1/jobs ${f.addRate.toFixed(0)}/s | ratio ${ratio(f.addRate, b.addRate)}`);
  console.log(`end to end  plain ${b.endToEnd.toFixed(0)} jobs/s | flowd ${f.endToEnd.toFixed(0)} jobs/s (completed in Postgres) | ratio ${ratio(f.endToEnd, b.endToEnd)}`);
  console.log(`            machine CPU: plain ${b.cpu.toFixed(2)} s | flowd ${f.cpu.toFixed(2)} s for ${JOBS} jobs | ratio ${ratio(f.cpu, b.cpu)}`);
  console.log(`            flowd ${f.work}`);
  console.log(`bulk        Queue.addBulk + Worker ${b.bulk.rate.toFixed(0)} jobs/s | POST /v1/jobs/bulk ${f.bulk.rate.toFixed(0)} jobs/s (completed in Postgres) | ratio ${ratio(f.bulk.rate, b.bulk.rate)}`);
  console.log(`            machine CPU: plain ${b.bulk.cpu.toFixed(2)} s | flowd ${f.bulk.cpu.toFixed(2)} s for ${BULKS * BULK} jobs | ratio ${ratio(f.bulk.cpu, b.bulk.cpu)}`);
  console.log(`            flowd ${f.bulk.work}`);
}

if (import.meta.main) await benchJobs();
