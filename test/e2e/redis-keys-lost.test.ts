import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { deletePrefix } from "../helpers/redis";
import { waitFor } from "../helpers/wait";
import { startCountingReceiver } from "../helpers/receiver";

// Every Redis key of the deployment deleted in the middle of a flow and of a single job.
let cluster: Cluster;
const receiver = startCountingReceiver();
const hits = receiver.hits;
beforeAll(async () => {
  cluster = await startCluster({
    apis: 1,
    workers: 1,
    tag: "lost",
    env: { FLOWD_RECONCILE_INTERVAL_MS: "1000", FLOWD_LOCK_DURATION_MS: "2000", FLOWD_STALLED_INTERVAL_MS: "1000" },
  });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  receiver.stop();
});

const call = (path: string) => ({ name: "http", data: { url: `http://127.0.0.1:${receiver.port}${path}`, method: "POST" } });

describe("Redis loses every key of the deployment", () => {
  test("mid-flow: the flow completes with every result, and no completed job runs again", async () => {
    const api = cluster.apis[0]!;
    const created = await api.http("POST", "/v1/flows", {
      name: "survives",
      root: { name: "echo", data: { root: true }, children: [call("/a"), call("/b"), { name: "sleep", data: { ms: 4000 } }] },
    });
    expect(created.status).toBe(201);
    const [a, b, sleeper] = created.body.root.children;
    // Wait until the two calls are completed in Postgres and the sleep is running.
    await waitFor(async () => {
      const flow = (await api.http("GET", `/v1/flows/${created.body.id}`)).body;
      const [x, y, z] = flow.root.children;
      return x.status === "completed" && y.status === "completed" && z.status === "active";
    }, 15_000, "calls done and the sleep running");

    await deletePrefix(cluster.prefix);
    const lostAt = Date.now();

    const done = await waitFor(async () => {
      const flow = (await api.http("GET", `/v1/flows/${created.body.id}?wait=5`)).body;
      return flow.status === "completed" && flow;
    }, 45_000, "the flow to complete after the loss");
    console.log(`flow recovered ${Date.now() - lostAt} ms after its Redis keys were deleted`);
    // The completed calls ran once; their results still reached the root, under their own job ids.
    expect(hits.get("/a")).toBe(1);
    expect(hits.get("/b")).toBe(1);
    const children = done.root.result.children as Record<string, unknown>;
    expect(children[a.jobId]).toEqual({ status: 200, body: { path: "/a" } });
    expect(children[b.jobId]).toEqual({ status: 200, body: { path: "/b" } });
    const rerunSleep = done.root.children[2];
    expect(rerunSleep.jobId).not.toBe(sleeper.jobId);
    expect(children[rerunSleep.jobId]).toEqual({ slept: 4000 });
    expect(Object.keys(children)).toHaveLength(3);
  }, 90_000);

  test("a single job waiting in Redis is queued again and completes", async () => {
    const api = cluster.apis[0]!;
    // Delayed, so it is certainly still in Redis (not done) when the keys go.
    const created = await api.http("POST", "/v1/jobs", { name: "echo", data: { n: 1 }, opts: { delay: 3000 } });
    await waitFor(async () => (await api.http("GET", `/v1/jobs/${created.body.id}`)).body.status === "delayed", 10_000, "delayed");
    await deletePrefix(cluster.prefix);
    const done = await api.http("GET", `/v1/jobs/${created.body.id}?wait=30`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result).toEqual({ data: { n: 1 }, children: {} });
  }, 60_000);
});
