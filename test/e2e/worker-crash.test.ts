import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

// Worker processes killed or stopped mid-job. Short locks so a dead worker's job is free in ~2 s.
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({
    apis: 1,
    workers: 1,
    tag: "crash",
    env: { FLOWD_LOCK_DURATION_MS: "2000", FLOWD_STALLED_INTERVAL_MS: "1000" },
  });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

const jobStatus = async (id: string) => (await cluster.apis[0]!.http("GET", `/v1/jobs/${id}`)).body.status as string;

describe("a worker dying mid-job", () => {
  test("kill -9: the job finishes once another worker runs, and nothing is lost", async () => {
    const api = cluster.apis[0]!;
    const created = await api.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 1500 } });
    expect(created.status).toBe(201);
    await waitFor(async () => (await jobStatus(created.body.id)) === "active", 10_000, "the job to start");
    const victim = cluster.workers.shift()!;
    victim.proc.kill("SIGKILL");
    await victim.proc.exited;

    const started = Date.now();
    await cluster.startWorker();
    const done = await api.http("GET", `/v1/jobs/${created.body.id}?wait=30`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result).toEqual({ slept: 1500 });
    // Started twice: once on the killed worker, once after the stall was noticed.
    expect(done.body.attemptsMade).toBe(2);
    console.log(`recovered ${Date.now() - started} ms after the new worker started`);
  }, 60_000);

  test("SIGTERM: the running job finishes, is recorded, and the worker exits 0", async () => {
    const api = cluster.apis[0]!;
    const created = await api.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 1500 } });
    await waitFor(async () => (await jobStatus(created.body.id)) === "active", 10_000, "the job to start");
    const worker = cluster.workers.shift()!;
    const code = await worker.stop("SIGTERM");
    expect(code).toBe(0);
    // The worker recorded its last job before leaving: no other worker runs now.
    const row = await api.http("GET", `/v1/jobs/${created.body.id}`);
    expect(row.body.status).toBe("completed");
    expect(row.body.result).toEqual({ slept: 1500 });
    await cluster.startWorker();
  }, 60_000);
});
