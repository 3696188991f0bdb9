import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mentionsRedisError, startCluster, type Cluster, type QueueBackend } from "../helpers/cluster";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";
import { startWebhookReceiver } from "../helpers/webhook-receiver";
import { connectWs, eventSeqs, type WsClient } from "../helpers/ws-client";
import { startNodeWorker } from "../helpers/node-worker";

/**
 * The public contract, end to end, once per queue backend: an API process and a worker process
 * (the compiled binary when FLOWD_BIN is set), a plain `node` BullMQ worker on an external queue,
 * and the same checks on each. The Postgres backend runs with REDIS_URL at a dead port.
 */

// A user's own worker, nothing of flowd's in it: BullMQ's CommonJS build, on Redis or on BullMQ's Postgres backend.
const NODE_WORKER = `
const { Worker, createPostgresBackend } = require("bullmq");
const run = async (job) => {
  const line = { id: job.id, name: job.name, raw: JSON.stringify(job.data) };
  if (job.name === "combine") line.children = await job.getChildrenValues();
  console.log(JSON.stringify(line));
  if (job.name === "resize") {
    await job.updateProgress({ done: 1 });
    return { resized: job.data.w * 2 };
  }
  if (job.name === "combine") return { got: Object.keys(line.children).length };
  throw new Error("unknown handler " + job.name);
};
const worker = process.env.BACKEND === "postgres"
  ? new Worker(process.env.QUEUE, run, { connection: { connectionString: process.env.DATABASE_URL, schema: "bullmq" }, name: "external-node" }, createPostgresBackend)
  : new Worker(process.env.QUEUE, run, { connection: { url: process.env.REDIS_URL }, prefix: process.env.PREFIX, name: "external-node" });
worker.on("ready", () => console.log(JSON.stringify({ ready: true })));
worker.on("error", (err) => console.error(String(err)));
process.on("SIGTERM", () => worker.close().then(() => process.exit(0)));
`;

const FINISHED = ["completed", "failed", "cancelled"];
// Above bun's 5 s default when run alone: on a loaded machine the waits inside, each with its own deadline, may add up.
const TEST_MS = 60_000;
type Seen = { id: string; name: string; raw: string; children?: Record<string, unknown> };

describe.each(["redis", "postgres"] as QueueBackend[])("the contract on the %s backend", (backend) => {
  let stack: Cluster;
  let node: ReturnType<typeof Bun.spawn> | null = null;
  const seen: Seen[] = [];
  const sockets: WsClient[] = [];
  const hooks = startWebhookReceiver();
  const dir = mkdtempSync(join(tmpdir(), `flowd-contract-${backend}-`));
  const http = (...args: Parameters<Cluster["apis"][number]["http"]>) => stack.apis[0]!.http(...args);
  const open = async () => {
    const c = await connectWs(stack.apis[0]!.wsUrl, stack.token);
    sockets.push(c);
    return c;
  };
  const settled = (path: string, ms = 30_000) =>
    waitFor(async () => {
      const r = await http("GET", path);
      return FINISHED.includes(r.body.status) && r.body;
    }, ms, `${path} to finish`);
  const flowLog = async (flowId: string) => (await http("GET", `/v1/events?flowId=${flowId}&limit=1000`)).body.items as { seq: number; type: string; jobId?: string; status?: string }[];
  const flowCompleted = (flowId: string) => (m: any) => m.type === "event" && m.event === "flow.completed" && m.flowId === flowId;

  beforeAll(async () => {
    // Short locks: a killed worker's jobs are free again within about lock + interval.
    stack = await startCluster({
      backend,
      tag: `k${backend[0]}`,
      env: { FLOWD_EXTERNAL_QUEUES: "ext", FLOWD_LOCK_DURATION_MS: "2000", FLOWD_STALLED_INTERVAL_MS: "1000", FLOWD_SHUTDOWN_TIMEOUT_MS: "10000" },
    });
    node = await startNodeWorker({
      dir,
      script: NODE_WORKER,
      env: { BACKEND: backend, QUEUE: "ext", DATABASE_URL: stack.databaseUrl, REDIS_URL, PREFIX: stack.prefix },
      messages: seen,
      readyMs: 20_000,
    });
  }, 120_000);

  afterAll(async () => {
    for (const c of sockets) c.close();
    node?.kill("SIGKILL");
    hooks.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test("/readyz is ready on the backend asked for", async () => {
    const r = await http("GET", "/readyz", undefined, { token: null });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe("ready");
    if (backend === "postgres") {
      expect(r.body).toMatchObject({ postgres: "ok", queueBackend: "postgres" });
      expect(r.body.redis).toBeUndefined();
    } else expect(r.body).toMatchObject({ postgres: "ok", redis: "ok" });
  }, TEST_MS);

  test("a tree runs children before their parent, which gets their results; a socket sees it through to completed", async () => {
    const socket = await open();
    socket.send({ op: "subscribe", all: true });
    await socket.next((m) => m.type === "subscribed");
    const created = await http("POST", "/v1/flows", {
      name: "tree",
      root: { name: "echo", data: { top: true }, children: [{ name: "echo", data: { a: 1 } }, { name: "sleep", data: { ms: 100 }, children: [{ name: "echo", data: { c: 3 } }] }] },
    });
    expect(created.status).toBe(201);
    const flowId = created.body.id as string;
    const done = await socket.next(flowCompleted(flowId), 30_000);
    expect(done.status).toBe("completed");

    const flow = (await http("GET", `/v1/flows/${flowId}`)).body;
    expect(flow.status).toBe("completed");
    const [a, b] = flow.root.children;
    expect(flow.root.result).toEqual({ data: { top: true }, children: { [a.jobId]: a.result, [b.jobId]: b.result } });
    expect(b.result).toEqual({ slept: 100 });
    expect(b.children[0].result).toEqual({ data: { c: 3 }, children: {} });

    // The socket saw the log of this flow, in order, once; every child completed before its parent started.
    const events = socket.messages.filter((m) => m.type === "event" && m.flowId === flowId);
    expect(events.map((m) => m.seq)).toEqual((await flowLog(flowId)).map((e) => e.seq));
    expect(events[0].event).toBe("flow.created");
    // A parent's first step past waiting for its children: active, or completed if recorded at once.
    const at = (jobId: string, statuses: string[]) => events.findIndex((m) => m.event === "job.updated" && m.jobId === jobId && statuses.includes(m.status));
    const parentOf: [string, string][] = [
      [a.id, flow.root.id],
      [b.id, flow.root.id],
      [b.children[0].id, b.id],
    ];
    for (const [child, parent] of parentOf) {
      expect(at(child, ["completed"])).toBeGreaterThanOrEqual(0);
      expect(at(child, ["completed"])).toBeLessThan(at(parent, ["active", "completed"]));
    }
  }, TEST_MS);

  test("a socket that drops mid-flow resumes with after: exactly the missed events, in order, none twice", async () => {
    // A chain of sleeps, so the flow's events are spread over a second or so.
    const chain = (depth: number): any => ({ name: "sleep", data: { ms: 150 }, children: depth > 1 ? [chain(depth - 1)] : [] });
    const first = await open();
    const created = await http("POST", "/v1/flows", { name: "resumed", root: { name: "echo", children: [chain(5)] } });
    expect(created.status).toBe(201);
    const flowId = created.body.id as string;
    first.send({ op: "subscribe", flowId, after: 0 });
    await first.next((m) => m.type === "event" && m.event === "job.updated" && m.status === "active", 20_000);
    first.close();
    await first.closed;
    const before = eventSeqs(first);
    const last = before[before.length - 1]!;
    // Events happen while no socket is there.
    await waitFor(async () => (await flowLog(flowId)).some((e) => e.seq > last), 20_000, "events while disconnected");

    const again = await open();
    again.send({ op: "subscribe", flowId, after: last });
    await again.next(flowCompleted(flowId), 30_000);
    const after = eventSeqs(again);
    expect(after[0]).toBeGreaterThan(last);
    expect([...before, ...after]).toEqual((await flowLog(flowId)).map((e) => e.seq));
    again.close();
  }, TEST_MS);

  test("a diamond graph: D runs after B and C and gets both results by key", async () => {
    const created = await http("POST", "/v1/flows", {
      name: "diamond",
      jobs: [
        { key: "A", name: "echo", data: { n: 1 } },
        { key: "B", name: "echo", data: { n: 2 }, dependsOn: ["A"] },
        { key: "C", name: "sleep", data: { ms: 100 }, dependsOn: ["A"] },
        { key: "D", name: "echo", data: { n: 4 }, dependsOn: ["B", "C"] },
      ],
    });
    expect(created.status).toBe(201);
    const flow = await settled(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("completed");
    const byKey = Object.fromEntries(flow.jobs.map((j: { key: string }) => [j.key, j]));
    for (const key of ["A", "B", "C", "D"]) expect(byKey[key].status).toBe("completed");
    expect(byKey.C.result).toEqual({ slept: 100 });
    expect(byKey.B.result).toEqual({ data: { n: 2 }, parents: { A: byKey.A.result } });
    expect(byKey.D.result).toEqual({ data: { n: 4 }, parents: { B: byKey.B.result, C: byKey.C.result } });
  }, TEST_MS);

  test("a single job completes; an every-schedule creates jobs that run", async () => {
    const job = await http("POST", "/v1/jobs", { name: "echo", data: { single: true } });
    expect(job.status).toBe(201);
    const done = await settled(`/v1/jobs/${job.body.id}`);
    expect(done).toMatchObject({ status: "completed", result: { data: { single: true }, children: {} } });

    const schedule = await http("POST", "/v1/schedules", { name: "tick", every: 300, job: { name: "echo", data: { from: "tick" } } });
    expect(schedule.status).toBe(201);
    const runs = await waitFor(async () => {
      const items = (await http("GET", `/v1/jobs?scheduleId=${schedule.body.id}&status=completed`)).body.items as any[];
      return items.length >= 2 ? items : null;
    }, 30_000, "two scheduled jobs to complete");
    for (const r of runs) expect(r.result).toEqual({ data: { from: "tick" }, children: {} });
    expect((await http("DELETE", `/v1/schedules/${schedule.body.id}`)).status).toBe(204);
    expect((await http("GET", `/v1/schedules/${schedule.body.id}`)).status).toBe(404);
  }, TEST_MS);

  test("a webhook is delivered for a completed job, signed as Standard Webhooks says", async () => {
    const hook = await http("POST", "/v1/webhooks", { url: hooks.url("/hook"), events: ["*"] });
    expect(hook.status).toBe(201);
    // The receiver verifies each request with the standardwebhooks package against this secret.
    hooks.trust("/hook", hook.body.secret);
    const job = await http("POST", "/v1/jobs", { name: "echo", data: { hook: true } });
    const arrival = await waitFor(
      () => hooks.arrivals.find((a) => a.body.type === "job.updated" && JSON.stringify(a.body.data).includes(job.body.id) && a.body.data.status === "completed"),
      30_000,
      "the completed job's delivery",
    );
    expect(arrival.status).toBe(200);
    expect(hooks.badSignatures).toEqual([]);
    const deliveries = await waitFor(async () => {
      const items = (await http("GET", `/v1/webhooks/${hook.body.id}/deliveries`)).body.items as any[];
      return items.some((d) => d.eventSeq === arrival.body.seq) ? items : null;
    }, 10_000, "the delivery on record");
    expect(deliveries.find((d) => d.eventSeq === arrival.body.seq)).toMatchObject({ statusCode: 200, error: null });
    expect((await http("DELETE", `/v1/webhooks/${hook.body.id}`)).status).toBe(204);
  }, TEST_MS);

  test("a plain node BullMQ worker runs an external queue: data exactly as posted, progress, children's results", async () => {
    // Keys in an order jsonb would not keep, unicode, nesting: the worker must see these bytes.
    const posted = { w: 21, zeta: "é ✓", alpha: { list: [1, 2.5, null], "key with space": true } };
    const single = await http("POST", "/v1/jobs", { name: "resize", queue: "ext", data: posted });
    expect(single.status).toBe(201);
    const job = await settled(`/v1/jobs/${single.body.id}`);
    expect(job).toMatchObject({ status: "completed", result: { resized: 42 }, progress: { done: 1 } });
    expect(seen.find((l) => l.id === job.jobId)!.raw).toBe(JSON.stringify(posted));

    // A child that fails once fails the flow; after a retry the external parent still gets every child's result.
    const created = await http("POST", "/v1/flows", {
      name: "mixed",
      root: {
        name: "combine",
        queue: "ext",
        data: { step: "root" },
        children: [{ name: "resize", queue: "ext", data: { w: 3 } }, { name: "echo", data: { x: 1 } }, { name: "fail", data: { times: 1 } }],
      },
    });
    expect(created.status).toBe(201);
    const failed = await settled(`/v1/flows/${created.body.id}`);
    expect(failed.status).toBe("failed");
    expect(failed.root.children.map((j: { status: string }) => j.status)).toEqual(["completed", "completed", "failed"]);
    expect((await http("POST", `/v1/flows/${created.body.id}/retry`)).status).toBe(200);
    const flow = await waitFor(async () => {
      const r = (await http("GET", `/v1/flows/${created.body.id}`)).body;
      return FINISHED.includes(r.status) && r.root.attemptsMade >= 1 ? r : null;
    }, 30_000, "the retried flow to finish");
    expect(flow.status).toBe("completed");
    const [resize, echo, fail] = flow.root.children;
    const rootRuns = seen.filter((l) => l.name === "combine" && l.id === flow.root.jobId);
    expect(rootRuns).toHaveLength(1);
    expect(rootRuns[0]!.raw).toBe(JSON.stringify({ step: "root" }));
    // BullMQ names children `<prefix>:<queue>:<id>` on Redis and `<queue>:<id>` on Postgres: the id is last.
    const byJobId = Object.fromEntries(Object.entries(rootRuns[0]!.children!).map(([k, v]) => [k.split(":").pop(), v]));
    expect(byJobId).toEqual({ [resize.jobId]: { resized: 6 }, [echo.jobId]: { data: { x: 1 }, children: {} }, [fail.jobId]: { failedTimes: 1 } });
    expect(flow.root.result).toEqual({ got: 3 });
    // The resize that had completed was not run again.
    expect(seen.filter((l) => l.id === resize.jobId)).toHaveLength(1);

    // A graph job on the external queue gets its dependency's result the same way.
    const graph = await http("POST", "/v1/flows", {
      name: "mixed-graph",
      jobs: [
        { key: "first", name: "echo", data: { n: 1 } },
        { key: "then", name: "combine", queue: "ext", dependsOn: ["first"] },
      ],
    });
    expect(graph.status).toBe(201);
    const ran = await settled(`/v1/flows/${graph.body.id}`);
    expect(ran.status).toBe("completed");
    const byKey = Object.fromEntries(ran.jobs.map((j: { key: string }) => [j.key, j]));
    const thenRun = seen.find((l) => l.id === byKey.then.jobId)!;
    const deps = Object.fromEntries(Object.entries(thenRun.children!).map(([k, v]) => [k.split(":").pop(), v]));
    expect(deps).toEqual({ [byKey.first.jobId]: { data: { n: 1 }, children: {} } });
    expect(byKey.then.result).toEqual({ got: 1 });

    // The node worker is listed as an external one; flowd's own worker does not consume the queue.
    const workers = await waitFor(async () => {
      const items = (await http("GET", "/v1/workers")).body.items as { kind: string; queues: string[] }[];
      return items.some((w) => w.kind === "external" && w.queues[0] === "ext") ? items : null;
    }, 15_000, "the external worker to be listed");
    expect(workers.find((w) => w.kind === "flowd")!.queues).not.toContain("ext");
  }, TEST_MS);

  test("a running job is cancelled; a failed flow is retried and then completes", async () => {
    const running = await http("POST", "/v1/jobs", { name: "sleep", data: { ms: 60_000 } });
    expect(running.status).toBe(201);
    await waitFor(async () => (await http("GET", `/v1/jobs/${running.body.id}`)).body.status === "active", 20_000, "the sleep to start");
    expect((await http("POST", `/v1/jobs/${running.body.id}/cancel`)).status).toBe(200);
    const cancelled = await settled(`/v1/jobs/${running.body.id}`, 20_000);
    expect(cancelled.status).toBe("cancelled");
    expect((await http("POST", `/v1/jobs/${running.body.id}/cancel`)).status).toBe(409);

    const created = await http("POST", "/v1/flows", {
      name: "retried",
      root: { name: "echo", data: { top: 1 }, children: [{ name: "fail", data: { message: "first time", times: 1 } }, { name: "echo", data: { kept: 1 } }] },
    });
    expect(created.status).toBe(201);
    // The flow fails with its failed child; the sibling may still be running then, and ends on its own.
    const failed = await waitFor(async () => {
      const r = (await http("GET", `/v1/flows/${created.body.id}`)).body;
      return r.status === "failed" && r.root.children[1].status !== "active" && r.root.children[1].status !== "waiting" && r;
    }, 30_000, "the flow to fail and its sibling to end");
    expect(failed.status).toBe("failed");
    const [flaky, kept] = failed.root.children;
    expect(flaky.status).toBe("failed");
    expect(flaky.error.message).toContain("first time");
    expect(kept.status).toBe("completed");

    expect((await http("POST", `/v1/flows/${created.body.id}/retry`)).status).toBe(200);
    const done = await waitFor(async () => {
      const r = (await http("GET", `/v1/flows/${created.body.id}`)).body;
      return r.status === "completed" && r;
    }, 30_000, "the retried flow to complete");
    const [flaky2, kept2] = done.root.children;
    expect(flaky2.result).toEqual({ failedTimes: 1 });
    // The completed child kept its result and did not run again.
    expect(kept2.attemptsMade).toBe(1);
    expect(kept2.result).toEqual(kept.result);
    expect(done.root.result.children).toEqual({ [flaky2.jobId]: { failedTimes: 1 }, [kept2.jobId]: kept.result });
  }, TEST_MS);

  test("kill -9 of the worker while jobs run: a new worker finishes them, each recorded completed, none lost", async () => {
    const n = 24;
    const r = await http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: n }, (_, i) => ({ name: "sleep", data: { ms: 800, i } })) });
    expect(r.status).toBe(201);
    const ids: string[] = r.body.items.map((j: { id: string }) => j.id);
    const statuses = async () => Promise.all(ids.map(async (id) => (await http("GET", `/v1/jobs/${id}`)).body as { status: string; attemptsMade: number }));
    await waitFor(async () => (await statuses()).filter((j) => j.status === "active").length >= 4, 20_000, "jobs to be running");
    const victim = stack.workers.shift()!;
    victim.proc.kill("SIGKILL");
    await victim.proc.exited;
    const atKill = await statuses();
    expect(atKill.filter((j) => j.status === "completed").length).toBeLessThan(n);

    await stack.startWorker();
    const final = await waitFor(async () => {
      const all = await statuses();
      return all.every((j) => j.status === "completed") ? all : null;
    }, 60_000, "every job to be recorded completed");
    expect(final).toHaveLength(n);
    // Those cut off ran again on the new worker.
    expect(final.some((j) => j.attemptsMade >= 2)).toBe(true);
    // The new worker's recorder went on from the stored position: no backlog left.
    await waitFor(async () => {
      const ready = await http("GET", "/readyz", undefined, { token: null });
      return ready.body.recorder?.alive && ready.body.recorder.lagMs === 0;
    }, 30_000, "the recorder to catch up");
    // That position is kept in Postgres per queue: a Redis stream id, or on the Postgres backend
    // `<transaction>-<event id>` under BullMQ's schema.
    const [cursor] = await stack.database.sql`select last_id from stream_cursors where queue = ${backend === "postgres" ? "bullmq.jobs" : "jobs"}`;
    expect(cursor!.last_id).toMatch(/^\d+-\d+$/);
  }, 90_000);

  if (backend === "postgres") {
    test("no Redis connection was tried", () => {
      expect(mentionsRedisError(stack.logs())).toBe(false);
      expect(stack.logs()).toContain("no Redis connection is opened");
    });
  }
});
