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
    env: {
      FLOWD_QUEUES: "flows,side",
      FLOWD_RECONCILE_INTERVAL_MS: "1000",
      FLOWD_LOCK_DURATION_MS: "2000",
      FLOWD_STALLED_INTERVAL_MS: "1000",
    },
  });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  receiver.stop();
});

const call = (path: string, queue?: string) => ({
  name: "http",
  ...(queue ? { queue } : {}),
  data: { url: `http://127.0.0.1:${receiver.port}${path}`, method: "POST" },
});
type View = { jobId: string; status: string; result: any; attemptsMade: number; children: View[] };
const getFlow = async (id: string, wait = 0) => (await cluster.apis[0]!.http("GET", `/v1/flows/${id}${wait ? `?wait=${wait}` : ""}`)).body;

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

describe("Redis loses one queue's keys while the flow's other jobs live on", () => {
  test("lost children are added again under their own ids, tied to the root that still waits for them", async () => {
    const api = cluster.apis[0]!;
    const created = await api.http("POST", "/v1/flows", {
      name: "partial",
      root: {
        name: "echo",
        data: { root: true },
        children: [
          call("/side-done", "side"),
          { name: "echo", queue: "side", data: { late: true }, opts: { delay: 3000 } },
          { name: "sleep", data: { ms: 4000 } },
        ],
      },
    });
    expect(created.status).toBe(201);
    const [done, late, sleeper] = created.body.root.children as View[];
    await waitFor(async () => {
      const [x, y, z] = (await getFlow(created.body.id)).root.children as View[];
      return x!.status === "completed" && y!.status === "delayed" && z!.status === "active";
    }, 15_000, "the side call done, the late echo delayed and the sleep running");

    await deletePrefix(`${cluster.prefix}:side`);
    const lostAt = Date.now();
    const flow = await waitFor(async () => {
      const f = await getFlow(created.body.id, 5);
      return f.status === "completed" && f;
    }, 45_000, "the flow to complete after losing the side queue");
    console.log(`flow with a lost queue recovered ${Date.now() - lostAt} ms after the deletion`);

    expect(hits.get("/side-done")).toBe(1);
    const [x, y, z] = flow.root.children as View[];
    // Same ids: the root's dependency list in the surviving queue named them.
    expect([x!.jobId, y!.jobId, z!.jobId]).toEqual([done!.jobId, late!.jobId, sleeper!.jobId]);
    expect(flow.root.result.children).toEqual({
      [done!.jobId]: { status: 200, body: { path: "/side-done" } },
      [late!.jobId]: { data: { late: true }, children: {} },
      [sleeper!.jobId]: { slept: 4000 },
    });
    await cluster.workers[0]!.waitForLine(/"subtreesRestored":1\b.*repaired jobs Redis had lost|repaired jobs Redis had lost.*"subtreesRestored":1\b/, 5_000);
  }, 90_000);

  test("a lost parent is added again and its living children are re-linked, not re-run", async () => {
    const api = cluster.apis[0]!;
    const created = await api.http("POST", "/v1/flows", {
      name: "lost-middle",
      root: {
        name: "echo",
        data: { root: true },
        children: [{ name: "echo", queue: "side", data: { middle: true }, children: [call("/under"), { name: "sleep", data: { ms: 4000 } }] }],
      },
    });
    expect(created.status).toBe(201);
    const middle = created.body.root.children[0] as View;
    const [under, sleeper] = middle.children;
    await waitFor(async () => {
      const [m] = (await getFlow(created.body.id)).root.children as View[];
      const [u, s] = m!.children;
      return m!.status === "waiting-children" && u!.status === "completed" && s!.status === "active";
    }, 15_000, "the middle job waiting for a done call and a running sleep");

    await deletePrefix(`${cluster.prefix}:side`);
    const flow = await waitFor(async () => {
      const f = await getFlow(created.body.id, 5);
      return f.status === "completed" && f;
    }, 45_000, "the flow to complete after losing its middle job");

    expect(hits.get("/under")).toBe(1);
    const m = flow.root.children[0] as View;
    expect(m.jobId).toBe(middle.jobId);
    expect(m.result).toEqual({
      data: { middle: true },
      children: { [under!.jobId]: { status: 200, body: { path: "/under" } }, [sleeper!.jobId]: { slept: 4000 } },
    });
    expect(flow.root.result.children).toEqual({ [middle.jobId]: m.result });
    // The sleep ran once: one start recorded.
    expect(m.children[1]!.attemptsMade).toBe(1);
  }, 90_000);
});
