/**
 * `bun run bench graphs`: a 1,000-job graph of `echo` (4 layers of 250, each job past the first
 * depending on 4 of the layer above: 3,000 edges) beside a 1,000-job tree (an echo root with 999
 * echo children), alternating in one run against one cluster (api and worker as separate
 * processes): jobs/s and machine CPU per job for each, and, for the graph, the time from a
 * dependency's completion to its dependent's start (from the rows' timings in Postgres).
 */
import { sql } from "drizzle-orm";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { startCluster, type Cluster } from "../test/helpers/cluster";
import { clusterProcesses, cpuSeconds, median, percentile, postgresLine, postgresPerJob, printConditions, ratio, type PostgresPerJob } from "./stats";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LAYERS = 4;
const WIDTH = 250;
const FAN_IN = 4;

const tree = () => ({ name: "tree", root: { name: "echo", children: Array.from({ length: 999 }, (_, i) => ({ name: "echo", data: { i } })) } });
const graph = () => ({
  name: "graph",
  jobs: Array.from({ length: LAYERS * WIDTH }, (_, n) => {
    const l = Math.floor(n / WIDTH);
    const i = n % WIDTH;
    const dependsOn = l === 0 ? [] : Array.from({ length: FAN_IN }, (_, k) => `${l - 1}.${(i + k * 61) % WIDTH}`);
    return { key: `${l}.${i}`, name: "echo", data: { i }, ...(dependsOn.length > 0 ? { dependsOn } : {}) };
  }),
});

const CHAIN = 50;
const chain = () => ({
  name: "chain",
  jobs: Array.from({ length: CHAIN }, (_, n) => ({ key: `c${n}`, name: "echo", data: { n }, ...(n > 0 ? { dependsOn: [`c${n - 1}`] } : {}) })),
});

/** One flow from POST to GET showing it finished: jobs/s and the machine's CPU seconds per job. */
async function run(cluster: Cluster, body: { root?: unknown; jobs?: unknown[] }) {
  const jobs = body.jobs?.length ?? 1000;
  const http = cluster.apis[0]!.http;
  const groups = await clusterProcesses(cluster, "bench");
  const cpuBefore = await cpuSeconds(groups);
  const pg = await postgresPerJob(cluster.database.sql);
  const t = performance.now();
  const created = await http("POST", "/v1/flows", body);
  if (created.status !== 201) throw new Error(`create: ${created.status} ${JSON.stringify(created.body).slice(0, 300)}`);
  let status = created.body.status;
  while (status === "running") status = (await http("GET", `/v1/flows/${created.body.id}?wait=60`)).body.status;
  const seconds = (performance.now() - t) / 1000;
  if (status !== "completed") throw new Error(`flow ended ${status}`);
  const cpuAfter = await cpuSeconds(groups);
  const perJob = (k: string) => ((cpuAfter[k]! - cpuBefore[k]!) * 1000) / jobs;
  const cpuMsPerJob = perJob("machine");
  const split = { api: perJob("api"), worker: perJob("worker"), postgres: perJob("postgres"), redis: perJob("redis") };
  return { id: created.body.id as string, rate: jobs / seconds, cpuMsPerJob, split, pg: (await pg.after(jobs)) as PostgresPerJob };
}

/** For every edge: the dependent's start minus its last dependency's finish, in ms. */
async function releaseLatencies(cluster: Cluster, flowId: string): Promise<number[]> {
  const rows = await cluster.database.db.execute<{ ms: number }>(sql`
    select extract(epoch from (j.started_at - (select max(d.finished_at) from flow_jobs d
             where d.id in (select jsonb_array_elements_text(j.depends_on))))) * 1000 as ms
    from flow_jobs j where j.flow_id = ${flowId} and jsonb_array_length(j.depends_on) > 0`);
  return rows.map((r) => Number(r.ms));
}

await checkServices();
await ensureTemplate();
printConditions("graphs: a 1,000-job graph (3,000 edges) beside a 1,000-job tree, echo", { rounds: ROUNDS, layers: LAYERS, width: WIDTH, fanIn: FAN_IN });
const cluster = await startCluster({ tag: "bench-graphs" });
try {
  await run(cluster, tree()); // warm-up, untimed
  await run(cluster, graph());
  const trees: Awaited<ReturnType<typeof run>>[] = [];
  const graphs: Awaited<ReturnType<typeof run>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    trees.push(await run(cluster, tree()));
    graphs.push(await run(cluster, graph()));
  }
  const latencies = (await Promise.all(graphs.map((g) => releaseLatencies(cluster, g.id)))).flat();
  // A chain on an idle cluster: each dependent is released alone, so the figure is the release
  // path itself (recorder read, batch statement, add to Redis, a worker's pick-up), no queueing.
  const chains: number[] = [];
  for (let r = 0; r < ROUNDS; r++) chains.push(...(await releaseLatencies(cluster, (await run(cluster, chain())).id)));
  const treeRate = median(trees.map((x) => x.rate));
  const graphRate = median(graphs.map((x) => x.rate));
  console.log(`tree:  ${treeRate.toFixed(0)} jobs/s, machine CPU ${median(trees.map((x) => x.cpuMsPerJob)).toFixed(2)} ms/job`);
  console.log(`graph: ${graphRate.toFixed(0)} jobs/s, machine CPU ${median(graphs.map((x) => x.cpuMsPerJob)).toFixed(2)} ms/job (${ratio(graphRate, treeRate)} of the tree)`);
  const splitLine = (xs: typeof trees) =>
    (["api", "worker", "postgres", "redis"] as const).map((k) => `${k} ${median(xs.map((x) => x.split[k])).toFixed(2)}`).join(", ");
  console.log(`tree:  CPU ms/job by process: ${splitLine(trees)}`);
  console.log(`graph: CPU ms/job by process: ${splitLine(graphs)}`);
  console.log(`tree:  ${postgresLine(trees.map((x) => x.pg))}`);
  console.log(`graph: ${postgresLine(graphs.map((x) => x.pg))}`);
  console.log(`graph: dependency finished → dependent started, p50 ${percentile(latencies, 50).toFixed(0)} ms, p95 ${percentile(latencies, 95).toFixed(0)} ms (${latencies.length} dependents; includes their wait for a free worker slot)`);
  console.log(`chain of ${CHAIN}: dependency finished → dependent started, p50 ${percentile(chains, 50).toFixed(1)} ms, p95 ${percentile(chains, 95).toFixed(1)} ms (${chains.length} releases, nothing else running)`);
} finally {
  await cluster.stop();
}
