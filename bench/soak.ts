import "../src/runtime-shims";
/**
 * `bun run soak` (not run in CI): the hostile burst that found the missing admission control —
 * SOAK_FLOWS (200) clients at once, each creating one flow of SOAK_JOBS (1,000) echo jobs against
 * the compiled binary (one API, one worker process), retrying 503 overloaded after Retry-After
 * under one Idempotency-Key. Prints how many flow_jobs rows finished out of how many, the API's
 * peak RSS, /healthz and POST latencies, and the time until every row had finished.
 *
 * FLOWD_BIN picks the binary; without it one is built into a temporary folder. FLOWD_MAX_CREATES_IN_FLIGHT
 * and FLOWD_MAX_CREATE_BYTES_IN_FLIGHT, when set, are passed to the API (to compare bounds).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { startCluster } from "../test/helpers/cluster";
import { REPO } from "../test/helpers/process";
import { createBurst, describeBurst } from "../test/helpers/create-burst";
import { printConditions } from "./stats";

const FLOWS = Number(process.env.SOAK_FLOWS ?? 200);
const JOBS = Number(process.env.SOAK_JOBS ?? 1000);
const DEADLINE_MS = Number(process.env.SOAK_DEADLINE_MS ?? 900_000);
const PASSED = ["FLOWD_MAX_CREATES_IN_FLIGHT", "FLOWD_MAX_CREATE_BYTES_IN_FLIGHT", "FLOWD_MAX_CREATE_JOBS_IN_FLIGHT", "FLOWD_ADMISSION_WAIT_MS", "FLOWD_ADMISSION_MAX_WAITERS", "FLOWD_BODY_LIMIT", "WORKER_CONCURRENCY"];

async function binary(): Promise<{ bin: string; cleanup: () => Promise<void> }> {
  if (process.env.FLOWD_BIN) return { bin: process.env.FLOWD_BIN, cleanup: async () => {} };
  const dir = await mkdtemp(join(tmpdir(), "flowd-soak-"));
  const bin = join(dir, "flowd");
  const build = Bun.spawn([process.execPath, "build", "--compile", "--minify", "src/cli.ts", "--outfile", bin], { cwd: REPO, stdout: "ignore", stderr: "inherit" });
  if ((await build.exited) !== 0) throw new Error("bun build --compile failed");
  return { bin, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function rowsFinished(sql: Awaited<ReturnType<typeof startCluster>>["database"]["sql"]) {
  const [row] = await sql<{ total: number; finished: number }[]>`
    select count(*)::int as total,
           count(*) filter (where status in ('completed', 'failed', 'cancelled'))::int as finished
    from flow_jobs`;
  return row!;
}

async function soak() {
  await checkServices();
  await ensureTemplate();
  const { bin, cleanup } = await binary();
  process.env.FLOWD_BIN = bin; // the cluster helper starts what FLOWD_BIN names
  const env = Object.fromEntries(PASSED.filter((k) => process.env[k]).map((k) => [k, process.env[k]!]));
  printConditions("soak: a burst of large flow creates against one API and one worker (compiled binary)", {
    flows: FLOWS,
    jobsPerFlow: JOBS,
    bin,
    ...(Object.keys(env).length ? env : { bounds: "defaults" }),
  });
  const cluster = await startCluster({ apis: 1, workers: 1, tag: "soak", env });
  try {
    const api = cluster.apis[0]!;
    const started = performance.now();
    const report = await createBurst({ url: api.url, token: cluster.token, apiPid: api.proc.proc.pid, clients: FLOWS, jobsPerFlow: JOBS, deadlineMs: DEADLINE_MS, tag: "soak" });
    // The clients saw their flows finish; Postgres, the source of truth, must show every row finished.
    const deadline = Date.now() + 120_000;
    let rows = await rowsFinished(cluster.database.sql);
    while (rows.finished < rows.total && Date.now() < deadline) {
      await Bun.sleep(250);
      rows = await rowsFinished(cluster.database.sql);
    }
    const convergedS = (performance.now() - started) / 1000;
    const [flows] = await cluster.database.sql<{ n: number; completed: number }[]>`
      select count(*)::int as n, count(*) filter (where status = 'completed')::int as completed from flows`;
    const unexpected = report.outcomes.flatMap((o) => o.unexpected);
    const notAccepted = report.outcomes.filter((o) => !o.flowId).length;
    console.log(`rows converged ${rows.finished} / ${rows.total} flow_jobs finished (expected ${FLOWS * JOBS}); flows ${flows!.completed} completed of ${flows!.n}`);
    console.log(describeBurst(report));
    console.log(`time to converge (first POST to every row finished) ${convergedS.toFixed(1)} s`);
    console.log(`clients not accepted ${notAccepted}; unexpected answers ${unexpected.length}${unexpected.length ? `: ${unexpected.slice(0, 3).join(" | ")}` : ""}`);
    const ok = rows.finished === rows.total && rows.total === FLOWS * JOBS && flows!.n === FLOWS && unexpected.length === 0;
    console.log(ok ? "soak: converged" : "soak: DID NOT CONVERGE");
    return ok;
  } finally {
    await cluster.stop();
    await cleanup();
  }
}

process.exit((await soak()) ? 0 : 1);
