import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { createBurst, describeBurst, metric } from "../helpers/create-burst";

// What the bound must never cost: a web app whose users all press "create" at once with small flows.
// One API and one worker process (the compiled binary when FLOWD_BIN is set), default admission
// settings; every client must get its 201 on the first try.
const CLIENTS = 200;
const JOBS = 3;
/** An idle API is ~150 MiB; 200 small creates at once must not look like a burst of large ones. */
const MAX_RSS = 512 * 1024 * 1024;

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "admit-small" });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("admission under many small creates", () => {
  test(`${CLIENTS} concurrent ${JOBS}-job flows: every one 201 at the first try, memory bounded, all complete`, async () => {
    const api = cluster.apis[0]!;
    const report = await createBurst({ url: api.url, token: cluster.token, apiPid: api.proc.proc.pid, clients: CLIENTS, jobsPerFlow: JOBS, deadlineMs: 120_000, tag: "small" });
    console.log(`[admission] ${CLIENTS} clients x ${JOBS} jobs, ${process.env.FLOWD_BIN ? "binary" : "sources"}\n${describeBurst(report)}`);

    expect(report.outcomes.filter((o) => o.statuses.join() !== "201").map((o) => o.statuses)).toEqual([]);
    expect(report.outcomes.filter((o) => o.finalStatus !== "completed").map((o) => o.finalStatus)).toEqual([]);
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metric(metrics, "flowd_creates_refused_total")).toBe(0);
    expect(metric(metrics, "flowd_creates_in_flight ")).toBe(0);
    expect(metric(metrics, "flowd_create_jobs_in_flight ")).toBe(0);
    expect(report.peakRssBytes).toBeLessThanOrEqual(MAX_RSS);
    expect(report.healthzFailures).toBe(0);

    const [totals] = await cluster.database.sql<{ flows: number; jobs: number; completed: number }[]>`
      select (select count(*)::int from flows) as flows, (select count(*)::int from flow_jobs) as jobs,
             (select count(*)::int from flow_jobs where status = 'completed') as completed`;
    expect(totals).toEqual({ flows: CLIENTS, jobs: CLIENTS * JOBS, completed: CLIENTS * JOBS });
  }, 180_000);
});
