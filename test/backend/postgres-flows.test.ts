import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connectWs } from "../helpers/ws-client";
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

describe("flows and graphs on the Postgres backend", () => {
  test("a tree runs children before its parent, which gets their results; the socket sees the flow complete", async () => {
    const socket = await connectWs(`ws://127.0.0.1:${s.port}/v1/ws`, s.token);
    socket.send({ op: "subscribe", all: true });
    await socket.next((m) => m.type === "subscribed");
    const created = await s.http("POST", "/v1/flows", {
      name: "tree",
      root: { name: "echo", data: { top: true }, children: [{ name: "echo", data: { a: 1 } }, { name: "echo", data: { b: 2 }, children: [{ name: "echo", data: { c: 3 } }] }] },
    });
    expect(created.status).toBe(201);
    const flow = await finished(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("completed");
    const [a, b] = flow.root.children;
    expect(flow.root.result.children).toEqual({ [a.jobId]: a.result, [b.jobId]: b.result });
    expect(b.result.children).toEqual({ [b.children[0].jobId]: { data: { c: 3 }, children: {} } });
    await socket.next((m) => JSON.stringify(m).includes(created.body.id) && JSON.stringify(m).includes("flow.completed"), 20_000);
    socket.close();
  });

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

  test("a graph releases each job when its dependencies are done, with their results", async () => {
    const created = await s.http("POST", "/v1/flows", {
      name: "diamond",
      jobs: [
        { key: "start", name: "echo", data: { n: 1 } },
        { key: "left", name: "echo", data: { n: 2 }, dependsOn: ["start"] },
        { key: "right", name: "echo", data: { n: 3 }, dependsOn: ["start"] },
        { key: "end", name: "echo", data: { n: 4 }, dependsOn: ["left", "right"] },
      ],
    });
    expect(created.status).toBe(201);
    const flow = await finished(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("completed");
    const byKey = Object.fromEntries(flow.jobs.map((j: { key: string }) => [j.key, j]));
    expect(Object.keys(byKey).sort()).toEqual(["end", "left", "right", "start"]);
    for (const j of Object.values(byKey) as { status: string }[]) expect(j.status).toBe("completed");
    // Released after both, with both results (kept in its options on this backend: see enqueue.ts).
    expect(byKey.end.result.parents).toEqual({ left: byKey.left.result, right: byKey.right.result });
    expect(byKey.left.result.parents).toEqual({ start: byKey.start.result });
  });

  test("a retried tree runs only what failed: a completed child keeps its result and is not run again", async () => {
    const created = await s.http("POST", "/v1/flows", { name: "retry-tree", root: { name: "fail", data: { message: "root" }, children: [{ name: "echo", data: { kept: 1 } }] } });
    const failed = await finished(`/v1/flows/${created.body.id}`);
    expect(failed.status).toBe("failed");
    const child = failed.root.children[0];
    expect(child.status).toBe("completed");
    expect((await s.http("POST", `/v1/flows/${created.body.id}/retry`)).status).toBeLessThan(300);
    const again = await waitFor(async () => {
      const r = await s.http("GET", `/v1/flows/${created.body.id}`);
      return r.body.root.attemptsMade >= 2 && r.body.status === "failed" && r.body;
    }, 30_000, "the retried root to run again");
    expect(again.root.children[0].attemptsMade).toBe(1);
    expect(again.root.children[0].result).toEqual(child.result);
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

  test("a failed flow is retried and runs again", async () => {
    const created = await s.http("POST", "/v1/flows", { name: "retry-me", root: { name: "fail", data: { message: "once" } } });
    const failed = await finished(`/v1/flows/${created.body.id}`);
    expect(failed.status).toBe("failed");
    const retried = await s.http("POST", `/v1/flows/${created.body.id}/retry`);
    expect([200, 201, 202]).toContain(retried.status);
    const again = await waitFor(async () => {
      const r = await s.http("GET", `/v1/flows/${created.body.id}`);
      return r.body.root.attemptsMade >= 2 && r.body.status === "failed" && r.body;
    }, 30_000, "the retried flow to fail again");
    expect(again.root.error.message).toContain("once");
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
