import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { waitFor } from "../helpers/wait";
import { testPort } from "../helpers/ports";
import { startTaskReceiver, type Answer } from "../helpers/task-receiver";
import { mentionsRedisError, startPgStack, type PgStack } from "./pg-stack";

let s: PgStack;
const healthPort = testPort();
const answers = new Map<string, (n: number) => Answer>();
const service = startTaskReceiver((path, n) => answers.get(path)?.(n) ?? { status: 200, body: { ok: true } });
beforeAll(async () => {
  s = await startPgStack({ role: "split", workerEnv: { WORKER_HEALTH_PORT: String(healthPort) } });
});
afterAll(async () => {
  await s?.stop();
  service.stop();
});

const settled = (path: string, ms = 30_000) =>
  waitFor(async () => {
    const r = await s.http("GET", path);
    return ["completed", "failed", "cancelled"].includes(r.body.status) && r.body;
  }, ms, `${path} to finish`);

// Webhooks and the schedule's runs are checked on both backends by test/e2e/contract.test.ts.
describe("schedules, http tasks, readiness and metrics on the Postgres backend", () => {
  test("an every-schedule creates jobs through BullMQ's job scheduler, and they run", async () => {
    const created = await s.http("POST", "/v1/schedules", { name: "tick", every: 500, job: { name: "echo", data: { from: "schedule" } } });
    expect(created.status).toBe(201);
    await waitFor(async () => {
      const r = await s.http("GET", `/v1/jobs?name=echo&status=completed`);
      return r.body.items.filter((j: { data: { from?: string } }) => j.data.from === "schedule").length >= 2;
    }, 30_000, "two scheduled jobs to complete");
    // BullMQ keeps the scheduler in its own table; deleting the schedule removes it there.
    const [row] = await s.sql`select count(*)::int as n from bullmq.scheduler where queue = 'schedules'`;
    expect(row!.n).toBe(1);
    expect((await s.http("DELETE", `/v1/schedules/${created.body.id}`)).status).toBeLessThan(300);
    await waitFor(async () => (await s.sql`select count(*)::int as n from bullmq.scheduler where queue = 'schedules'`)[0]!.n === 0, 10_000, "the scheduler to go");
  });

  test("an http task parks on 202 and completes by its callback", async () => {
    answers.set("/park", () => ({ status: 202 }));
    const job = await s.http("POST", "/v1/jobs", { name: "http", data: { url: service.url("/park") } });
    expect(job.status).toBe(201);
    const call = await waitFor(() => service.callsTo("/park")[0], 20_000, "the service's call");
    const url = call.headers["flowd-callback-url"]!;
    const res = await fetch(`${url}/complete`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ result: { rows: 7 } }) });
    expect(res.status).toBe(200);
    const done = await settled(`/v1/jobs/${job.body.id}`);
    expect(done.status).toBe("completed");
    expect(done.result).toEqual({ rows: 7 });
    expect(service.callsTo("/park")).toHaveLength(1);
  });

  test("wait steps: a signal completes a parked step, a durable sleep wakes, and the graph goes on", async () => {
    const created = await s.http("POST", "/v1/flows", {
      name: "order",
      jobs: [
        { key: "paid", name: "signal", data: { key: "pg-order-1" } },
        { key: "pause", name: "wait", data: { for: "500ms" }, dependsOn: ["paid"] },
        { key: "ship", name: "echo", dependsOn: ["pause"] },
      ],
    });
    expect(created.status).toBe(201);
    // Parked: active with its wait, holding no worker.
    await waitFor(async () => {
      const f = (await s.http("GET", `/v1/flows/${created.body.id}`)).body;
      return f.jobs.find((j: { key: string }) => j.key === "paid")?.waitingFor?.reason === "signal";
    }, 20_000, "the signal step to park");
    expect((await s.http("POST", "/v1/signals", { key: "pg-order-1", payload: { amount: 42 } })).status).toBeLessThan(300);
    const flow = await settled(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("completed");
    const byKey = Object.fromEntries(flow.jobs.map((j: { key: string }) => [j.key, j]));
    expect(byKey.ship.result.parents.pause).toBeDefined();
    expect(JSON.stringify(byKey.paid.result)).toContain("42");
  });

  test("a per-key concurrency limit runs one job of the key at a time and lets the others go in turn (releases ring over NOTIFY)", async () => {
    const r = await s.http("POST", "/v1/jobs/bulk", {
      jobs: Array.from({ length: 4 }, (_, i) => ({ name: "sleep", data: { ms: 300, i }, opts: { concurrency: { key: "pg-tenant", limit: 1 } } })),
    });
    expect(r.status).toBe(201);
    const ids: string[] = r.body.items.map((j: { id: string }) => j.id);
    // While one runs, the others wait in Postgres, not in BullMQ.
    const held = await waitFor(async () => {
      const views = await Promise.all(ids.map(async (id) => (await s.http("GET", `/v1/jobs/${id}`)).body));
      return views.some((v) => v.waitingFor?.reason === "concurrency") ? views : null;
    }, 20_000, "jobs to wait for the key");
    expect(held.filter((v: { status: string }) => v.status === "active").length).toBeLessThanOrEqual(1);
    const done = await Promise.all(ids.map((id) => settled(`/v1/jobs/${id}`)));
    expect(done.map((j) => j.status)).toEqual(["completed", "completed", "completed", "completed"]);
  });

  test("/readyz of the API and of the worker's health port name the backend; the recorder is alive", async () => {
    const api = await s.http("GET", "/readyz", undefined, { token: null });
    expect(api.status).toBe(200);
    expect(api.body).toMatchObject({ status: "ready", postgres: "ok", queueBackend: "postgres", recorder: { alive: true } });
    const worker = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    expect(worker.status).toBe(200);
    expect(await worker.json()).toMatchObject({ status: "ready", queueBackend: "postgres" });
  });

  test("/metrics counts BullMQ's jobs by queue and the recorder's work", async () => {
    const api = await (await fetch(`${s.baseUrl}/metrics`)).text();
    expect(api).toMatch(/flowd_queue_jobs\{[^}]*queue="jobs"[^}]*status="completed"[^}]*\} [1-9]/);
    const worker = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    expect(worker).toMatch(/flowd_recorder_events_total [1-9]/);
    expect(worker).toMatch(/flowd_recorder_leader 1/);
  });

  test("no Redis connection was tried", () => {
    expect(mentionsRedisError(s.logs())).toBe(false);
  });
});
