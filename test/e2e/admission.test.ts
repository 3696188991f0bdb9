import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { createBurst, describeBurst, metric, type BurstReport } from "../helpers/create-burst";

// The probe that found it: concurrent 1,000-job flow creates against one API and one worker process
// (the compiled binary when FLOWD_BIN is set). Without a bound the API went to 3 GB and /healthz to
// 11 s; with the default admission bounds, the API must stay small and live, and every client must
// end up with exactly one flow that completes. Creates that find no room wait for it
// (FLOWD_ADMISSION_WAIT_MS) before a 503, and the client retries those after Retry-After.
const CLIENTS = 60;
const JOBS = 1000; // FLOWD_MAX_FLOW_JOBS' default
const MAX_RSS = 1024 * 1024 * 1024;
const MAX_HEALTHZ_MS = 2000;

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "admit" });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("admission control under a burst of large creates", () => {
  test(`${CLIENTS} concurrent ${JOBS}-job flows: bounded memory, live /healthz, 201 or 503 overloaded, all complete once`, async () => {
    const api = cluster.apis[0]!;
    const report: BurstReport = await createBurst({
      url: api.url,
      token: cluster.token,
      apiPid: api.proc.proc.pid,
      clients: CLIENTS,
      jobsPerFlow: JOBS,
      deadlineMs: 200_000,
      tag: "admit",
    });
    console.log(`[admission] ${CLIENTS} clients x ${JOBS} jobs, ${process.env.FLOWD_BIN ? "binary" : "sources"}\n${describeBurst(report)}`);

    // Every answer was a 201 or a well-formed 503 overloaded with Retry-After, and every flow completed.
    expect(report.outcomes.flatMap((o) => o.unexpected)).toEqual([]);
    expect(report.outcomes.filter((o) => !o.flowId)).toEqual([]);
    expect(report.outcomes.filter((o) => o.finalStatus !== "completed").map((o) => o.finalStatus)).toEqual([]);
    // The burst went past the bound (else this test shows nothing): creates waited for room, and
    // those that found none in FLOWD_ADMISSION_WAIT_MS were refused; the process knows what it refused.
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    console.log(`[admission] waited ${metric(metrics, "flowd_creates_waited_total")}, refused ${report.refusedMs.length}`);
    expect(metric(metrics, "flowd_creates_waited_total") + report.refusedMs.length).toBeGreaterThan(0);
    expect(metric(metrics, "flowd_creates_refused_total")).toBe(report.refusedMs.length);
    expect(metric(metrics, "flowd_creates_in_flight ")).toBe(0);
    expect(metric(metrics, "flowd_create_bytes_in_flight ")).toBe(0);
    expect(metric(metrics, "flowd_create_jobs_in_flight ")).toBe(0);
    expect(metric(metrics, "flowd_creates_waiting ")).toBe(0);

    expect(report.peakRssBytes).toBeLessThanOrEqual(MAX_RSS);
    expect(report.healthzFailures).toBe(0);
    expect(Math.max(...report.healthzMs)).toBeLessThanOrEqual(MAX_HEALTHZ_MS);

    // Postgres: one flow per client (its Idempotency-Key), each with all of its jobs, all completed;
    // a refused create left nothing behind.
    const flows = await cluster.database.sql<{ key: string; n: number; jobs: number; rows: number; completed: number }[]>`
      select f.idempotency_key as key, count(distinct f.id)::int as n, min(f.job_count)::int as jobs,
             count(j.id)::int as rows, count(j.id) filter (where j.status = 'completed')::int as completed
      from flows f left join flow_jobs j on j.flow_id = f.id
      group by f.idempotency_key order by f.idempotency_key`;
    expect(flows.length).toBe(CLIENTS);
    expect(new Set(flows.map((f) => f.key))).toEqual(new Set(Array.from({ length: CLIENTS }, (_, i) => `admit-${i}`)));
    for (const f of flows) expect({ key: f.key, n: f.n, jobs: f.jobs, rows: f.rows, completed: f.completed }).toEqual({ key: f.key, n: 1, jobs: JOBS, rows: JOBS, completed: JOBS });
    const [totals] = await cluster.database.sql<{ flows: number; jobs: number }[]>`
      select (select count(*)::int from flows) as flows, (select count(*)::int from flow_jobs) as jobs`;
    expect(totals).toEqual({ flows: CLIENTS, jobs: CLIENTS * JOBS });
  }, 300_000);
});
