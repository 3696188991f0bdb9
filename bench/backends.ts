/**
 * `bun run bench backends`: the same work through flowd on each queue backend, in one run — single
 * jobs created in bulks of 1,000, and flows of 1,000 jobs (a root and 999 children) — end to end
 * (created over REST until Postgres records the last one completed), with one API and one worker
 * process. Each side: jobs/s, the whole machine's CPU ms per job, per-process CPU ms per job, and
 * Postgres commits and rows written per job. The Redis backend is the baseline of the ratio.
 */
import { startCluster } from "../test/helpers/cluster";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { clusterProcesses, cpuSeconds, postgresWrites, printConditions, ratio } from "./stats";

const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const FLOW_JOBS = 1000;
const FLOWS = Number(process.env.BENCH_FLOWS ?? 5);
const BULK = 1000;
const CONCURRENCY = 16;

type Figures = { rate: number; machineMsPerJob: number; perProcess: string; commitsPerJob: number; rowsPerJob: number };

async function run(backend: "redis" | "postgres", work: "jobs" | "flows"): Promise<Figures> {
  const cluster = await startCluster({ apis: 1, workers: 1, tag: `bb${backend[0]}`, env: { FLOWD_QUEUE_BACKEND: backend, WORKER_CONCURRENCY: String(CONCURRENCY) } });
  try {
    const api = cluster.apis[0]!;
    const table = work === "jobs" ? "jobs" : "flow_jobs";
    const completed = async () => (await cluster.database.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table} where status = 'completed'`))[0]!.n;
    const create = async (round: number) => {
      const res =
        work === "jobs"
          ? await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: BULK }, (_, i) => ({ name: "echo", data: { round, i } })) })
          : await api.http("POST", "/v1/flows", { name: "bench", root: { name: "echo", data: { round }, children: Array.from({ length: FLOW_JOBS - 1 }, (_, i) => ({ name: "echo", data: { i } })) } });
      if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(res.body).slice(0, 200)}`);
    };
    // Warm-up: one round, done, before anything is timed.
    await create(-1);
    const warm = work === "jobs" ? BULK : FLOW_JOBS;
    while ((await completed()) < warm) await Bun.sleep(20);
    const rounds = work === "jobs" ? Math.ceil(JOBS / BULK) : FLOWS;
    const total = rounds * warm;
    const groups = await clusterProcesses(cluster, "bench");
    const cpu0 = await cpuSeconds(groups);
    const pg0 = await postgresWrites(cluster.database.sql);
    const t = performance.now();
    // A few creates in flight, within the API's admission limits (FLOWD_MAX_CREATE_JOBS_IN_FLIGHT).
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < rounds) await create(next++);
    }));
    while ((await completed()) < warm + total) await Bun.sleep(20);
    const seconds = (performance.now() - t) / 1000;
    await Bun.sleep(1_000); // the statistics collector publishes counts when a transaction ends
    const cpu1 = await cpuSeconds(groups);
    const pg1 = await postgresWrites(cluster.database.sql);
    const perJob = (k: string) => (((cpu1[k]! - cpu0[k]!) / total) * 1000).toFixed(3);
    return {
      rate: total / seconds,
      machineMsPerJob: ((cpu1.machine! - cpu0.machine!) / total) * 1000,
      perProcess: ["api", "worker", "postgres", "redis"].map((k) => `${k} ${perJob(k)}`).join(", "),
      commitsPerJob: (pg1.commits - pg0.commits) / total,
      rowsPerJob: (pg1.rows - pg0.rows) / total,
    };
  } finally {
    await cluster.stop();
  }
}

export async function benchBackends() {
  await checkServices();
  await ensureTemplate();
  printConditions("queue backends: the same work on Redis and on BullMQ's Postgres backend", {
    jobs: `${JOBS} single jobs in bulks of ${BULK}`,
    flows: `${FLOWS} flows of ${FLOW_JOBS} jobs`,
    concurrency: CONCURRENCY,
    processes: "1 api + 1 worker",
  });
  for (const work of ["jobs", "flows"] as const) {
    const redis = await run("redis", work);
    const postgres = await run("postgres", work);
    for (const [name, f] of [["redis", redis], ["postgres", postgres]] as const)
      console.log(
        `${work} on ${name}: ${f.rate.toFixed(0)} jobs/s, machine CPU ${f.machineMsPerJob.toFixed(3)} ms/job (${f.perProcess}), ` +
          `${f.commitsPerJob.toFixed(2)} Postgres commits and ${f.rowsPerJob.toFixed(2)} rows written per job`,
      );
    console.log(`${work}: postgres/redis jobs/s ${ratio(postgres.rate, redis.rate)}, machine CPU per job ${ratio(postgres.machineMsPerJob, redis.machineMsPerJob)}`);
  }
}
