/**
 * Flows through flowd (api and worker as separate processes) against the same trees through plain
 * BullMQ (FlowProducer + Worker), on the same Redis, with the same concurrency, in one run.
 */
import { FlowProducer, Worker, type FlowJob } from "bullmq";
import IORedis from "ioredis";
import { checkServices, ensureTemplate, REDIS_URL } from "../test/helpers/services";
import { startCluster } from "../test/helpers/cluster";
import { deletePrefix, uniquePrefix } from "../test/helpers/redis";
import { bullKey } from "../src/queues";
import { clusterProcesses, cpuSeconds, cpuSpent, median, percentile, pidsNamed, postgresLine, postgresPerJob, printConditions, ratio, type PostgresPerJob } from "./stats";

const CONCURRENCY = 16;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Creations timed per flow size, after WARMUP untimed ones on each side (a fresh process runs cold code). */
const samples = (size: number) => (size === 1000 ? 20 : 100);
const WARMUP = 3;

/** Where a throughput round's time went, in ms: creating the flow, running it, and (flowd) until GET showed it. */
interface Phases {
  create: number;
  run: number;
  shown?: number;
}
const medianOf = (phases: Phases[], key: keyof Phases) => median(phases.map((p) => p[key] ?? 0)).toFixed(0);

export const flowdTree = (n: number) => ({
  name: "bench",
  root: { name: "echo", data: { root: true }, children: Array.from({ length: n - 1 }, (_, i) => ({ name: "echo", data: { i } })) },
});

let bullIds = 0;
export const bullTree = (n: number): FlowJob => {
  const id = `b${bullIds++}`;
  return {
    name: "echo",
    queueName: "flows",
    data: { root: true },
    opts: { jobId: id },
    children: Array.from({ length: n - 1 }, (_, i) => ({ name: "echo", queueName: "flows", data: { i }, opts: { jobId: `${id}-${i}` } })),
  };
};

/**
 * When a round's work ran, from BullMQ's own job hashes: the earliest start among the first
 * children (they are taken first) and the root's finish. Wall-clock milliseconds, as BullMQ stores them.
 */
async function ranBetween(redis: IORedis, prefix: string, rootId: string, childIds: string[]) {
  const starts = await Promise.all(childIds.slice(0, 32).map((id) => redis.hget(bullKey(prefix, "flows", id), "processedOn")));
  const finished = Number(await redis.hget(bullKey(prefix, "flows", rootId), "finishedOn"));
  return { firstStart: Math.min(...starts.map(Number)), rootFinished: finished };
}

/** Plain BullMQ: the baseline. The worker returns what flowd's echo returns. */
async function bullmqRun(jobs: number, rounds: number) {
  const prefix = uniquePrefix("bench");
  const conn = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const producer = new FlowProducer({ connection: conn, prefix });
  const creation: Record<number, number[]> = { 1: [], 10: [], 1000: [] };
  for (const size of [1, 10, 1000]) {
    for (let i = -WARMUP; i < samples(size); i++) {
      const t = performance.now();
      await producer.add(bullTree(size));
      if (i >= 0) creation[size]!.push(performance.now() - t);
    }
  }
  await deletePrefix(prefix);
  const rates: number[] = [];
  const phases: Phases[] = [];
  const worker = new Worker(
    "flows",
    async (job) => ({ data: job.data, children: await job.getChildrenValues() }),
    { connection: new IORedis(REDIS_URL, { maxRetriesPerRequest: null }), prefix, concurrency: CONCURRENCY },
  );
  const groups = { bench: [process.pid], redis: await pidsNamed("redis-server") };
  const cpuBefore = await cpuSeconds(groups);
  for (let r = 0; r < rounds; r++) {
    const tree = bullTree(jobs);
    const done = new Promise<void>((resolve) => {
      const onDone = (job: { id?: string }) => {
        if (job.id === tree.opts!.jobId) {
          worker.off("completed", onDone);
          resolve();
        }
      };
      worker.on("completed", onDone);
    });
    const t = performance.now();
    const t0 = Date.now();
    await producer.add(tree);
    const added = Date.now();
    await done;
    rates.push(jobs / ((performance.now() - t) / 1000));
    const ran = await ranBetween(conn, prefix, tree.opts!.jobId!, tree.children!.map((c) => c.opts!.jobId!));
    phases.push({ create: added - t0, run: ran.rootFinished - ran.firstStart });
  }
  const cpu = cpuSpent(cpuBefore, await cpuSeconds(groups));
  await worker.close();
  await producer.close();
  conn.disconnect();
  await deletePrefix(prefix);
  return { rates, creation, cpu, phases };
}

async function flowdRun(jobs: number, rounds: number) {
  // Creation latency with no worker, so both sides measure the add alone.
  const cluster = await startCluster({ apis: 1, workers: 0, tag: "bench", env: { WORKER_CONCURRENCY: String(CONCURRENCY) } });
  const api = cluster.apis[0]!;
  const creation: Record<number, number[]> = { 1: [], 10: [], 1000: [] };
  for (const size of [1, 10, 1000]) {
    for (let i = -WARMUP; i < samples(size); i++) {
      const t = performance.now();
      const res = await api.http("POST", "/v1/flows", flowdTree(size));
      if (i >= 0) creation[size]!.push(performance.now() - t);
      if (res.status !== 201) throw new Error(`POST /v1/flows answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
  }
  // Those flows are not run: drop their jobs so the throughput rounds start from an empty queue.
  await deletePrefix(cluster.prefix);
  await cluster.database.sql`delete from flows`;
  await cluster.startWorker();
  const rates: number[] = [];
  const phases: Phases[] = [];
  const redis = new IORedis(REDIS_URL);
  const commitsPerJob: number[] = [];
  const pgPerJob: PostgresPerJob[] = [];
  const groups = await clusterProcesses(cluster, "bench");
  const cpuBefore = await cpuSeconds(groups);
  for (let r = 0; r < rounds; r++) {
    const pg = await postgresPerJob(cluster.database.sql);
    const t = performance.now();
    const t0 = Date.now();
    const created = await api.http("POST", "/v1/flows", flowdTree(jobs));
    const posted = Date.now();
    let status = created.body.status;
    while (status === "running") status = (await api.http("GET", `/v1/flows/${created.body.id}?wait=60`)).body.status;
    const seconds = (performance.now() - t) / 1000;
    const shown = Date.now();
    if (status !== "completed") throw new Error(`flow ended ${status}`);
    rates.push(jobs / seconds);
    const root = created.body.root as { jobId: string; children: { jobId: string }[] };
    const ran = await ranBetween(redis, cluster.prefix, root.jobId, root.children.map((c) => c.jobId));
    phases.push({ create: posted - t0, run: ran.rootFinished - ran.firstStart, shown: shown - ran.rootFinished });
    const perJob = await pg.after(jobs);
    pgPerJob.push(perJob);
    commitsPerJob.push(perJob.commits);
  }
  const cpu = cpuSpent(cpuBefore, await cpuSeconds(groups));
  redis.disconnect();
  await cluster.stop();
  return { rates, creation, commitsPerJob, pgPerJob, cpu, phases };
}

export async function benchFlows() {
  await checkServices();
  await ensureTemplate();
  const jobs = 1000;
  printConditions("flows: 1,000-job flow (echo root + 999 echo children) and POST latency", { jobs, concurrency: CONCURRENCY, rounds: ROUNDS, creations: "100 (1, 10 jobs), 20 (1,000 jobs)", warmup: WARMUP });
  const bull = await bullmqRun(jobs, ROUNDS);
  const flowd = await flowdRun(jobs, ROUNDS);
  const bullRate = median(bull.rates);
  const flowdRate = median(flowd.rates);
  console.log(`throughput  plain BullMQ ${bullRate.toFixed(0)} jobs/s | flowd ${flowdRate.toFixed(0)} jobs/s | ratio ${ratio(flowdRate, bullRate)} (goal >= 0.8)`);
  console.log(
    `phases (median ms)  plain BullMQ: add ${medianOf(bull.phases, "create")}, run ${medianOf(bull.phases, "run")} | ` +
      `flowd: POST ${medianOf(flowd.phases, "create")}, run ${medianOf(flowd.phases, "run")}, root finished to GET completed ${medianOf(flowd.phases, "shown")}`,
  );
  console.log(`flowd ${postgresLine(flowd.pgPerJob)} (whole run incl. API)`);
  console.log(`cpu for the ${ROUNDS} throughput rounds: plain BullMQ ${bull.cpu} | flowd ${flowd.cpu}`);
  for (const size of [1, 10, 1000]) {
    const f = flowd.creation[size]!;
    const b = bull.creation[size]!;
    console.log(
      `create ${String(size).padStart(4)} jobs  flowd p50 ${percentile(f, 50).toFixed(1)} ms p99 ${percentile(f, 99).toFixed(1)} ms | ` +
        `FlowProducer.add p50 ${percentile(b, 50).toFixed(1)} ms p99 ${percentile(b, 99).toFixed(1)} ms | ratio p50 ${ratio(percentile(f, 50), percentile(b, 50))} (goal <= 1.5)`,
    );
  }
}

if (import.meta.main) await benchFlows();
