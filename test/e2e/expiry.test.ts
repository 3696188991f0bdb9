import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * `opts.expireAfterMs` with a real API, worker process, Postgres and Redis: a job that did not start
 * within that time of becoming ready ends `failed` with code `expired`, no attempt made, and fails
 * its flow like any failure — whether the sweep finds it waiting or a worker picks it up late.
 */
let stack: Stack;
let service: ReturnType<typeof Bun.serve>;
let calls = 0;

beforeAll(async () => {
  service = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch() {
      calls++;
      return Response.json({ ok: true });
    },
  });
  // One slot per queue: a sleeping job holds it, so what comes after waits.
  stack = await startStack({ tag: "expiry", workers: 0, env: { WORKER_CONCURRENCY: "1" } });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  service?.stop(true);
});

const { http } = { http: (...args: Parameters<Stack["http"]>) => stack.http(...args) };
const flowDone = (id: string, ms = 20_000) =>
  waitFor(async () => {
    const f = (await http("GET", `/v1/flows/${id}`)).body;
    return f.status !== "running" && f;
  }, ms, `flow ${id} finished`);
const jobDone = (id: string, ms = 20_000) =>
  waitFor(async () => {
    const j = (await http("GET", `/v1/jobs/${id}`)).body;
    return ["completed", "failed", "cancelled"].includes(j.status) && j;
  }, ms, `job ${id} finished`);
const startedAt = async (table: "jobs" | "flow_jobs", id: string) =>
  (await stack.database.sql<{ started_at: Date | null }[]>`select started_at from ${stack.database.sql(table)} where id = ${id}`)[0]!.started_at;
/** Postgres's clock has passed the job's ready time plus `ms`: it is overdue. */
const overdue = (table: "jobs" | "flow_jobs", id: string, ms: number) =>
  waitFor(
    async () =>
      (await stack.database.sql<{ due: boolean }[]>`
        select ready_at + ${ms} * interval '1 millisecond' < now() as due from ${stack.database.sql(table)} where id = ${id}`)[0]?.due,
    10_000,
    `job ${id} overdue`,
  );

/** A flow whose only job sleeps, holding the flows queue's one slot until cancelled. */
// Just under DURABLE_SLEEP_MS: a sleep that long would park and give its slot back.
async function blockFlowsQueue() {
  const blocker = (await http("POST", "/v1/flows", { name: "blocker", root: { name: "sleep", data: { ms: 59_000 } } })).body;
  await waitFor(async () => (await http("GET", `/v1/flows/${blocker.id}`)).body.root.status === "active", 10_000, "the blocker running");
  return { release: () => http("POST", `/v1/flows/${blocker.id}/cancel`) };
}

describe("opts.expireAfterMs", () => {
  test("a job overdue before any worker ran fails with code expired once workers start (sweep or the worker's check at start), its call never made", async () => {
    const created = await http("POST", "/v1/jobs", { name: "http", data: { url: `http://127.0.0.1:${service.port}/never` }, opts: { expireAfterMs: 300 } });
    expect(created.status).toBe(201);
    await overdue("jobs", created.body.id, 300);
    await stack.startWorker();
    const done = await jobDone(created.body.id);
    expect(done.status).toBe("failed");
    expect(done.error.code).toBe("expired");
    expect(done.error.message).toContain("did not start within its expireAfterMs (300 ms)");
    expect(done.attemptsMade).toBe(0);
    expect(calls).toBe(0);
    // A job that starts in time is not touched by its expireAfterMs.
    const timely = await http("POST", "/v1/jobs", { name: "echo", data: { ok: 1 }, opts: { expireAfterMs: 60_000 } });
    expect((await jobDone(timely.body.id)).status).toBe("completed");
  }, 60_000);

  test("a flow's child that waits past expireAfterMs fails with code expired and fails its flow", async () => {
    const blocker = await blockFlowsQueue();
    let flowId = "";
    try {
      const created = await http("POST", "/v1/flows", {
        name: "expiring",
        root: { name: "echo", children: [{ name: "echo", data: { late: true }, opts: { expireAfterMs: 300 } }] },
      });
      expect(created.status).toBe(201);
      flowId = created.body.id;
      // It expires while the only slot is held: the sweep fails it, no worker involved.
      const child = await waitFor(async () => {
        const c = (await http("GET", `/v1/flows/${flowId}`)).body.root.children[0];
        return c.status === "failed" && c;
      }, 10_000, "the child expired");
      expect(child.error.code).toBe("expired");
      expect(child.attemptsMade).toBe(0);
      expect(await startedAt("flow_jobs", child.id)).toBeNull();
    } finally {
      // BullMQ fails the parent when a worker next takes it (its deferred failure): free the slot.
      await blocker.release();
    }
    const flow = await flowDone(flowId);
    expect(flow.status).toBe("failed");
    expect(flow.root.status).toBe("failed");
    expect(flow.root.error.message).toContain(`child job ${flow.root.children[0].jobId}`);
  }, 60_000);

  test("a graph job that expires cancels its dependents and fails the flow", async () => {
    const blocker = await blockFlowsQueue();
    try {
      const created = await http("POST", "/v1/flows", {
        name: "expiring graph",
        jobs: [
          { key: "a", name: "echo", opts: { expireAfterMs: 300 } },
          { key: "b", name: "echo", dependsOn: ["a"] },
        ],
      });
      expect(created.status).toBe(201);
      const flow = await flowDone(created.body.id);
      expect(flow.status).toBe("failed");
      const [a, b] = flow.jobs;
      expect(a.status).toBe("failed");
      expect(a.error.code).toBe("expired");
      expect(a.attemptsMade).toBe(0);
      expect(b.status).toBe("cancelled");
      expect(b.error.message).toContain("dependency a failed");
    } finally {
      await blocker.release();
    }
  }, 60_000);
});
