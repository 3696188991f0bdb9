/**
 * User code against the built-ins, in one run on one cluster (api and worker processes from
 * sources): a 1,000-job flow of a handler module doing what `echo` does against the built-in `echo`,
 * rounds interleaved; and POST /v1/jobs p50 for a module handler validated against the registry
 * (Ajv, schema from Postgres) against the built-in `echo` (TypeBox, compiled in).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { startCluster } from "../test/helpers/cluster";
import { waitFor } from "../test/helpers/wait";
import { median, percentile, printConditions, ratio } from "./stats";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const POSTS = 300;
const JOBS = 1000;

const MODULE = `export default {
  "my-echo": {
    description: "echo, as a module",
    data: { type: "object", properties: { i: { type: "integer" }, root: { type: "boolean" } } },
    run: async ({ data, children }) => ({ data, children }),
  },
};`;

const tree = (name: string) => ({
  name: "bench",
  root: { name, data: { root: true }, children: Array.from({ length: JOBS - 1 }, (_, i) => ({ name, data: { i } })) },
});

export async function benchHandlers() {
  await checkServices();
  await ensureTemplate();
  const dir = mkdtempSync(join(tmpdir(), "flowd-bench-handlers-"));
  writeFileSync(join(dir, "my-echo.ts"), MODULE);
  printConditions("handlers: a module handler against the built-in echo", { jobs: JOBS, rounds: ROUNDS, posts: POSTS, concurrency: 16 });
  const cluster = await startCluster({ apis: 1, workers: 0, tag: "benchh", env: { WORKER_CONCURRENCY: "16" } });
  try {
    await cluster.startWorker({ FLOWD_HANDLERS: dir });
    const api = cluster.apis[0]!;
    await waitFor(async () => (await api.http("POST", "/v1/jobs", { name: "my-echo" })).status === 201, 10_000, "the registry");
    const run = async (name: string) => {
      const t = performance.now();
      const created = await api.http("POST", "/v1/flows", tree(name));
      if (created.status !== 201) throw new Error(JSON.stringify(created.body));
      let status = created.body.status;
      while (status === "running") status = (await api.http("GET", `/v1/flows/${created.body.id}?wait=60`)).body.status;
      if (status !== "completed") throw new Error(`flow ended ${status}`);
      return JOBS / ((performance.now() - t) / 1000);
    };
    await run("echo");
    await run("my-echo");
    const rates: Record<string, number[]> = { echo: [], "my-echo": [] };
    for (let r = 0; r < ROUNDS; r++)
      for (const name of r % 2 === 0 ? ["echo", "my-echo"] : ["my-echo", "echo"]) rates[name]!.push(await run(name));
    const [builtin, module] = [median(rates.echo!), median(rates["my-echo"]!)];
    console.log(`1,000-job flow  built-in echo ${builtin.toFixed(0)} jobs/s | module my-echo ${module.toFixed(0)} jobs/s | ratio ${ratio(module, builtin)} (goal >= 0.95)`);

    const posts: Record<string, number[]> = { echo: [], "my-echo": [] };
    for (let i = 0; i < POSTS; i++)
      for (const name of i % 2 === 0 ? ["echo", "my-echo"] : ["my-echo", "echo"]) {
        const t = performance.now();
        const res = await api.http("POST", "/v1/jobs", { name, data: { i } });
        if (res.status !== 201) throw new Error(JSON.stringify(res.body));
        posts[name]!.push(performance.now() - t);
      }
    const [p50b, p50m] = [percentile(posts.echo!.slice(20), 50), percentile(posts["my-echo"]!.slice(20), 50)];
    console.log(`POST /v1/jobs p50  built-in echo ${p50b.toFixed(2)} ms | registry-validated my-echo ${p50m.toFixed(2)} ms | ratio ${ratio(p50m, p50b)} (goal <= 1.05)`);
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  await benchHandlers();
  process.exit(0);
}
