import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { waitFor } from "../helpers/wait";
import { mentionsRedisError, startPgStack, type PgStack } from "./pg-stack";

let s: PgStack;
beforeAll(async () => {
  // API and worker apart: the recorder, releases and doorbells cross processes through Postgres alone.
  // One job at a time per queue: a cancelled job the worker did not abort would hold up the next.
  s = await startPgStack({ role: "split", env: { WORKER_CONCURRENCY: "1" } });
});
afterAll(async () => {
  await s?.stop();
});

const finished = (path: string, ms = 30_000) =>
  waitFor(async () => {
    const r = await s.http("GET", path);
    return ["completed", "failed", "cancelled"].includes(r.body.status) && r.body;
  }, ms, `${path} to finish`);

// Trees, graphs, sockets, retry and cancel are checked on both backends by test/e2e/contract.test.ts;
// what stays here is how the Postgres backend does its part.
describe("flows on the Postgres backend", () => {
  test("a failed child fails its parent (BullMQ's failParentOnFailure, done in Postgres)", async () => {
    const created = await s.http("POST", "/v1/flows", {
      name: "bad-child",
      root: { name: "echo", children: [{ name: "fail", data: { message: "nope" }, opts: { failParentOnFailure: true } }] },
    });
    expect(created.status).toBe(201);
    const flow = await finished(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("failed");
    expect(flow.root.status).toBe("failed");
    expect(flow.root.children[0].error.message).toContain("nope");
  });

  test("a job that waits past its expireAfterMs is failed as expired (claimed from BullMQ's table)", async () => {
    // The queue's one slot is busy, so the next job waits.
    const busy = await s.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 4_000 } });
    await waitFor(async () => (await s.http("GET", `/v1/jobs/${busy.body.id}`)).body.status === "active", 20_000, "the sleep to start");
    const late = await s.http("POST", "/v1/jobs", { name: "echo", opts: { expireAfterMs: 300 } });
    expect(late.status).toBe(201);
    const job = await finished(`/v1/jobs/${late.body.id}`, 20_000);
    expect(job.status).toBe("failed");
    expect(job.error.code).toBe("expired");
    expect(job.error.attemptsMade).toBe(0);
    // The sweep claimed it from BullMQ's table while the sleep still ran (not the worker's own check at start).
    expect(s.logs()).toContain("expired jobs that did not start within their expireAfterMs");
    expect((await finished(`/v1/jobs/${busy.body.id}`, 20_000)).status).toBe("completed");
  });

  test("a cancelled running job is aborted on the worker (the cancel doorbell is a NOTIFY)", async () => {
    const created = await s.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 60_000 } });
    expect(created.status).toBe(201);
    await waitFor(async () => (await s.http("GET", `/v1/jobs/${created.body.id}`)).body.status === "active", 20_000, "the job to start");
    const cancelled = await s.http("POST", `/v1/jobs/${created.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    const job = await finished(`/v1/jobs/${created.body.id}`, 20_000);
    expect(job.status).toBe("cancelled");
    // The worker let go of it (its only slot is free again): the next job runs long before the 60 s sleep would end.
    const next = await s.http("POST", "/v1/jobs", { name: "echo", data: { after: "cancel" } });
    const done = await finished(`/v1/jobs/${next.body.id}`, 20_000);
    expect(done.status).toBe("completed");
  });

  test("no Redis connection was tried", () => {
    expect(mentionsRedisError(s.logs())).toBe(false);
  });
});
