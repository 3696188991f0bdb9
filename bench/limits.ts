/**
 * Per-key limits: end-to-end jobs/s of single jobs under per-key concurrency limits against the
 * same jobs without limits (the baseline, same processes, same run), and release latency — a slot
 * freed (a job's finished_at) to the key's next job started (its started_at), both from Postgres.
 */
import { startCluster, type Cluster } from "../test/helpers/cluster";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { clusterProcesses, cpuSeconds, percentile, postgresLine, postgresPerJob, printConditions, ratio, type PostgresPerJob } from "./stats";

const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const KEYS = 100;
const LIMIT = 4;
const CONCURRENCY = 16;
const WORKERS = 2;
/** Jobs in the latency run: one key per chain, limit 1, so every start but the first follows a release. */
const LATENCY_JOBS = 1_000;
const LATENCY_KEYS = 10;
const BULK = 1_000;

type Job = { name: string; data: Record<string, unknown>; opts?: Record<string, unknown> };

async function run(cluster: Cluster, tag: string, jobs: Job[]): Promise<{ rate: number; ids: string[]; cpuMsPerJob: number; split: string; pg: PostgresPerJob }> {
  const api = cluster.apis[0]!;
  const ids: string[] = [];
  const groups = await clusterProcesses(cluster, "bench");
  const before = await cpuSeconds(groups);
  const pg = await postgresPerJob(cluster.database.sql);
  const t = performance.now();
  for (let i = 0; i < jobs.length; i += BULK) {
    const res = await api.http("POST", "/v1/jobs/bulk", { jobs: jobs.slice(i, i + BULK) });
    if (res.status !== 201) throw new Error(`${tag}: POST /v1/jobs/bulk answered ${res.status}: ${JSON.stringify(res.body)}`);
    ids.push(...(res.body.items as { id: string }[]).map((j) => j.id));
  }
  // Done when Postgres, the source of truth, says so.
  for (;;) {
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`;
    if (row!.n === ids.length) break;
    await Bun.sleep(20);
  }
  const rate = jobs.length / ((performance.now() - t) / 1000);
  const after = await cpuSeconds(groups);
  const perJob = (k: string) => ((after[k]! - before[k]!) * 1000) / jobs.length;
  const cpuMsPerJob = perJob("machine");
  const split = (["api", "worker", "postgres", "redis"] as const).map((k) => `${k} ${perJob(k).toFixed(2)}`).join(", ");
  return { rate, ids, cpuMsPerJob, split, pg: jobs.length >= 100 ? await pg.after(jobs.length) : { commits: NaN, inserts: NaN, updates: NaN } };
}

/** A tree's children (a 999-child tree: FLOWD_MAX_FLOW_JOBS is 1,000 by default). */
const TREE_CHILDREN = 999;
const TREE_KEYS = KEYS;

/** One tree flow of `children` under an `echo` root, created and run to its end; jobs/s over its children. */
async function runTree(cluster: Cluster, tag: string, children: Job[]): Promise<{ rate: number; flowId: string }> {
  const api = cluster.apis[0]!;
  const t = performance.now();
  const res = await api.http("POST", "/v1/flows", { name: tag, root: { name: "echo", data: {}, children } });
  if (res.status !== 201) throw new Error(`${tag}: POST /v1/flows answered ${res.status}: ${JSON.stringify(res.body)}`);
  for (;;) {
    const [row] = await cluster.database.sql<{ status: string }[]>`select status from flows where id = ${res.body.id}`;
    if (row!.status === "completed") break;
    if (row!.status !== "running") throw new Error(`${tag}: the tree ended ${row!.status}`);
    await Bun.sleep(20);
  }
  return { rate: children.length / ((performance.now() - t) / 1000), flowId: res.body.id };
}

/** For each key's jobs in start order: how long after the previous one finished the next started (ms). */
async function releaseLatencies(cluster: Cluster, ids: string[], table: "jobs" | "flow_jobs" = "jobs"): Promise<number[]> {
  const rows = await cluster.database.sql<{ key: string; started: number; finished: number }[]>`
    select concurrency_keys[1] as key, extract(epoch from started_at)::float8 * 1000 as started,
           extract(epoch from finished_at)::float8 * 1000 as finished
    from ${cluster.database.sql(table)} where id = any(${ids}) and concurrency_keys is not null order by key, started_at`;
  const out: number[] = [];
  for (let i = 1; i < rows.length; i++) if (rows[i]!.key === rows[i - 1]!.key) out.push(rows[i]!.started - rows[i - 1]!.finished);
  return out;
}

/** For comparison, the same hop count without limits: single jobs' creation (the API's insert) to their start. */
async function startLatencies(cluster: Cluster, ids: string[]): Promise<number[]> {
  const rows = await cluster.database.sql<{ ms: number }[]>`
    select extract(epoch from started_at - created_at)::float8 * 1000 as ms from jobs where id = any(${ids})`;
  return rows.map((r) => r.ms);
}

export async function benchLimits() {
  await checkServices();
  await ensureTemplate();
  printConditions("per-key limits: single jobs under concurrency limits vs the same jobs without", {
    jobs: JOBS,
    keys: KEYS,
    limit: LIMIT,
    workers: WORKERS,
    concurrency: CONCURRENCY,
    latency: `${LATENCY_JOBS} jobs over ${LATENCY_KEYS} keys, limit 1`,
  });
  const cluster = await startCluster({ apis: 1, workers: WORKERS, tag: "blimits", env: { WORKER_CONCURRENCY: String(CONCURRENCY) } });
  try {
    await run(cluster, "warm-up", Array.from({ length: 200 }, (_, i) => ({ name: "echo", data: { i }, opts: { concurrency: { key: `w${i % 10}`, limit: 2 } } })));
    const plain = await run(cluster, "plain", Array.from({ length: JOBS }, (_, i) => ({ name: "echo", data: { i } })));
    const limited = await run(
      cluster,
      "limited",
      Array.from({ length: JOBS }, (_, i) => ({ name: "echo", data: { i }, opts: { concurrency: { key: `k${i % KEYS}`, limit: LIMIT } } })),
    );
    const chain = await run(
      cluster,
      "latency",
      Array.from({ length: LATENCY_JOBS }, (_, i) => ({ name: "echo", data: { i }, opts: { concurrency: { key: `l${i % LATENCY_KEYS}`, limit: 1 } } })),
    );
    const latency = await releaseLatencies(cluster, chain.ids);
    // A lone create at a time: created -> started of a job nothing holds, the floor a release adds to.
    const lone: string[] = [];
    for (let i = 0; i < 100; i++) lone.push(...(await run(cluster, "lone", [{ name: "echo", data: { i } }])).ids);
    const floor = await startLatencies(cluster, lone);
    console.log(`end to end  without limits ${plain.rate.toFixed(0)} jobs/s | ${KEYS} keys x limit ${LIMIT} ${limited.rate.toFixed(0)} jobs/s | ratio ${ratio(limited.rate, plain.rate)}`);
    console.log(`machine CPU without limits ${plain.cpuMsPerJob.toFixed(2)} ms/job | with limits ${limited.cpuMsPerJob.toFixed(2)} ms/job`);
    console.log(`CPU ms/job by process: without limits ${plain.split} | with limits ${limited.split}`);
    console.log(`without limits ${postgresLine([plain.pg])}`);
    console.log(`with limits    ${postgresLine([limited.pg])}`);
    console.log(
      `release     slot freed -> next job started: p50 ${percentile(latency, 50).toFixed(1)} ms, p95 ${percentile(latency, 95).toFixed(1)} ms ` +
        `(${latency.length} releases; limit-1 chains ran ${chain.rate.toFixed(0)} jobs/s)`,
    );
    console.log(
      `            baseline: a job without limits, created -> started: p50 ${percentile(floor, 50).toFixed(1)} ms | ratio ${ratio(percentile(latency, 50), percentile(floor, 50))}`,
    );
    // Tree flows: held children go into Redis parked and a pass promotes them (src/services/flow-redis.ts).
    const children = (opts: (i: number) => Record<string, unknown> | undefined) =>
      Array.from({ length: TREE_CHILDREN }, (_, i) => ({ name: "echo", data: { i }, ...(opts(i) ? { opts: opts(i) } : {}) }));
    const plainTree = await runTree(cluster, "tree plain", children(() => undefined));
    const limitedTree = await runTree(cluster, "tree limited", children((i) => ({ concurrency: { key: `t${i % TREE_KEYS}`, limit: LIMIT } })));
    const chainTree = await runTree(cluster, "tree latency", children((i) => ({ concurrency: { key: `tl${i % TREE_KEYS}`, limit: 1 } })));
    const treeIds = (await cluster.database.sql<{ id: string }[]>`select id from flow_jobs where flow_id = ${chainTree.flowId}`).map((r) => r.id);
    const treeLatency = await releaseLatencies(cluster, treeIds, "flow_jobs");
    console.log(
      `tree        ${TREE_CHILDREN} children: without limits ${plainTree.rate.toFixed(0)} jobs/s | ${TREE_KEYS} keys x limit ${LIMIT} ${limitedTree.rate.toFixed(0)} jobs/s | ratio ${ratio(limitedTree.rate, plainTree.rate)}`,
    );
    console.log(
      `            release (promote) slot freed -> next child started: p50 ${percentile(treeLatency, 50).toFixed(1)} ms, p95 ${percentile(treeLatency, 95).toFixed(1)} ms (${treeLatency.length} releases)`,
    );
  } finally {
    await cluster.stop();
  }
}

if (import.meta.main) await benchLimits();
