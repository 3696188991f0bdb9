import { describe, expect, test } from "bun:test";
import IORedis from "ioredis";
import type { ReceivedCall } from "../helpers/task-receiver";
import { useTaskStack } from "../helpers/task-stack";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";

/**
 * Retry, cancel and delete against work that is still live (the binary in CI, API and worker in
 * processes of their own): a retry never runs a live sibling again, a callback's complete and a
 * cancel never both win, and a deleted flow leaves nothing running or stored in Redis.
 */
const WORKER_ENV = { WORKER_CONCURRENCY: "8", FLOWD_LOCK_DURATION_MS: "3000", FLOWD_STALLED_INTERVAL_MS: "1000" };
const stack = useTaskStack("retrylive", WORKER_ENV, { FLOWD_SECRET_KEY: Buffer.alloc(32, 5).toString("base64") });
const { answers, http, job, createTask, settled, callback } = stack;
const urlOf = (c: ReceivedCall) => c.headers["flowd-callback-url"]!;
const flowOf = async (id: string) => (await http("GET", `/v1/flows/${id}`)).body;
const flowDone = (id: string, ms = 30_000) =>
  waitFor(async () => {
    const f = (await http("GET", `/v1/flows/${id}?wait=5`)).body;
    return f.status !== "running" && f;
  }, ms, `flow ${id} finished`);

/** Every Redis key under the stack's prefix that names one of these job ids (any run of them). */
async function keysNaming(ids: string[]): Promise<string[]> {
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${stack.cluster.prefix}:*`, "COUNT", 1000);
      cursor = next;
      found.push(...keys.filter((k) => ids.some((id) => k.includes(id))));
    } while (cursor !== "0");
    return found;
  } finally {
    redis.disconnect();
  }
}

/** How many times BullMQ started this job id: its `active` entries in the queue's event stream. */
async function startsOf(jobId: string, queue = "flows"): Promise<number> {
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const entries = await redis.xrange(`${stack.cluster.prefix}:${queue}:events`, "-", "+");
    return entries.filter(([, f]) => f.includes("active") && f[f.indexOf("jobId") + 1] === jobId && f[f.indexOf("event") + 1] === "active").length;
  } finally {
    redis.disconnect();
  }
}

/** A flow whose `fail` child fails (after a second) while an http sibling is parked and a sleep sibling runs. */
async function flowWithLiveSiblings(path: string, sleepMs: number) {
  answers.set(path, () => ({ status: 202 }));
  const res = await http("POST", "/v1/flows", {
    name: "live siblings",
    root: {
      name: "echo",
      data: { root: true },
      children: [
        { name: "fail", data: { message: "boom", times: 1 }, opts: { delay: 1000 } },
        { name: "http", data: { url: stack.receiver.url(path) } },
        { name: "sleep", data: { ms: sleepMs } },
      ],
    },
  });
  expect(res.status).toBe(201);
  const id = res.body.id as string;
  const call = await waitFor(() => stack.receiver.callsTo(path)[0], 20_000, "the http child's call");
  await waitFor(async () => (await flowOf(id)).root.children[1].callbackUntil, 10_000, "the http child parked");
  const failed = await waitFor(async () => {
    const f = await flowOf(id);
    return f.status === "failed" && f;
  }, 20_000, "the flow failed");
  return { id, call, failed };
}

describe("retry never touches live work", () => {
  test("a flow retried while an http sibling is parked and a sleep sibling runs: each runs once, the parent once all are done", async () => {
    const { id, call, failed } = await flowWithLiveSiblings("/live-park", 6_000);
    const [bad, parked, sleeper] = failed.root.children;
    expect(bad.status).toBe("failed");
    expect(parked.status).toBe("active");
    expect(sleeper.status).toBe("active");
    const startedAt = async () => (await stack.cluster.database.sql<{ started_at: Date }[]>`select started_at from flow_jobs where id = ${sleeper.id}`)[0]!.started_at;
    const sleepStarted = await startedAt();

    const retried = await http("POST", `/v1/flows/${id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.status).toBe("running");
    const [bad2, parked2, sleeper2] = retried.body.root.children;
    // The live siblings keep their run: same BullMQ id, same attempt, still waiting for their end.
    expect(bad2.jobId).not.toBe(bad.jobId);
    expect(parked2.jobId).toBe(parked.jobId);
    expect(parked2.status).toBe("active");
    expect(parked2.callbackUntil).toBe(parked.callbackUntil);
    expect(sleeper2.jobId).toBe(sleeper.jobId);
    expect(sleeper2.status).toBe("active");

    // The re-run `fail` completes; the parent still waits for the parked and the sleeping child.
    await waitFor(async () => (await flowOf(id)).root.children[0].status === "completed", 20_000, "the re-run child completed");
    expect((await flowOf(id)).root.status).toBe("waiting-children");

    // The service completes through the URL of the original call, which still waits.
    const done = await callback(urlOf(call), "complete", { result: { paid: 1 } });
    expect(done.status).toBe(200);
    const flow = await flowDone(id);
    expect(flow.status).toBe("completed");
    const [bad3, parked3, sleeper3] = flow.root.children;
    expect(parked3.result).toEqual({ paid: 1 });
    expect(parked3.attemptsMade).toBe(1);
    expect(sleeper3.result).toEqual({ slept: 6_000 });
    expect(sleeper3.attemptsMade).toBe(1);
    // The parent saw all three results, the live ones through BullMQ as any child's.
    expect(flow.root.result).toEqual({
      data: { root: true },
      children: { [bad3.jobId]: { failedTimes: 1 }, [parked3.jobId]: { paid: 1 }, [sleeper3.jobId]: { slept: 6_000 } },
    });
    expect(flow.root.attemptsMade).toBe(2);
    // Once each: one call to the service, one start of the sleep (its start time unchanged).
    expect(stack.receiver.callsTo("/live-park").length).toBe(1);
    expect(await startsOf(sleeper.jobId)).toBe(1);
    expect(await startedAt()).toEqual(sleepStarted);
    expect(await keysNaming([`${sleeper.id}-`, `${parked.id}-`])).toEqual([]);
  }, 90_000);

  test("a sibling that fails after the retry fails the retried parent again; a second retry runs only it", async () => {
    answers.set("/late-fail", (n) => (n === 1 ? { status: 202 } : { status: 200, body: { second: true } }));
    const res = await http("POST", "/v1/flows", {
      name: "late fail",
      root: { name: "echo", children: [{ name: "fail", data: { times: 1 } }, { name: "http", data: { url: stack.receiver.url("/late-fail") } }] },
    });
    const id = res.body.id;
    const call = await waitFor(() => stack.receiver.callsTo("/late-fail")[0], 20_000, "the call");
    await waitFor(async () => (await flowOf(id)).status === "failed" && (await flowOf(id)).root.children[1].callbackUntil, 20_000, "failed, child parked");
    expect((await http("POST", `/v1/flows/${id}/retry`)).status).toBe(200);
    expect((await callback(urlOf(call), "fail", { message: "declined", permanent: true })).status).toBe(200);
    const failed = await flowDone(id);
    expect(failed.status).toBe("failed");
    expect(failed.root.children[0].status).toBe("completed");
    expect(failed.root.children[1].error.message).toContain("declined");
    expect((await http("POST", `/v1/flows/${id}/retry`)).status).toBe(200);
    const flow = await flowDone(id);
    expect(flow.status).toBe("completed");
    expect(flow.root.children[1].result).toEqual({ status: 200, body: { second: true } });
    expect(stack.receiver.callsTo("/late-fail").length).toBe(2);
  }, 60_000);

  test("a single job cannot be retried while parked, and its callback still completes it; a failed one is called again once", async () => {
    answers.set("/single-park", () => ({ status: 202 }));
    const t = await createTask("/single-park");
    const call = await waitFor(() => stack.receiver.callsTo("/single-park")[0], 20_000, "the call");
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    const refused = await http("POST", `/v1/jobs/${t.id}/retry`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("job_running");
    expect((await callback(urlOf(call), "complete", { result: "ok" })).status).toBe(200);
    const done = await settled(t.id);
    expect(done.result).toBe("ok");
    expect(done.jobId).toBe(t.jobId);
    expect(stack.receiver.callsTo("/single-park").length).toBe(1);

    answers.set("/single-fail", (n) => (n === 1 ? { status: 400 } : { status: 200, body: { n } }));
    const f = await createTask("/single-fail");
    expect((await settled(f.id)).status).toBe("failed");
    expect((await http("POST", `/v1/jobs/${f.id}/retry`)).status).toBe(200);
    expect((await settled(f.id)).result).toEqual({ status: 200, body: { n: 2 } });
    expect(stack.receiver.callsTo("/single-fail").length).toBe(2);
  }, 60_000);
});

describe("cancel racing a callback's complete: exactly one wins, and no result is lost", () => {
  const ROUNDS = 10;

  test("single jobs: POST /v1/jobs/:id/cancel against POST …/complete", async () => {
    answers.set("/race-job", () => ({ status: 202 }));
    const tasks = await Promise.all(Array.from({ length: ROUNDS }, () => createTask("/race-job")));
    for (const t of tasks) await waitFor(async () => (await job(t.id)).callbackUntil, 20_000, "parked");
    const byJob = new Map(stack.receiver.callsTo("/race-job").map((c) => [c.headers["flowd-job-id"]!, c]));
    const outcomes = await Promise.all(
      tasks.map((t, i) => Promise.all([callback(urlOf(byJob.get(t.id)!), "complete", { result: i }), http("POST", `/v1/jobs/${t.id}/cancel`)])),
    );
    const wins = { complete: 0, cancel: 0 };
    for (const [i, t] of tasks.entries()) {
      const [cb, cancel] = outcomes[i]!;
      const done = await settled(t.id);
      if (cb.status === 200) {
        wins.complete++;
        expect({ i, cancel: cancel.status, code: cancel.body.error?.code }).toEqual({ i, cancel: 409, code: "job_finished" });
        expect({ i, status: done.status, result: done.result }).toEqual({ i, status: "completed", result: i });
      } else {
        wins.cancel++;
        expect({ i, cb: cb.status, code: cb.body?.error?.code, cancel: cancel.status }).toEqual({ i, cb: 409, code: "job_finished", cancel: 200 });
        expect({ i, status: done.status, result: done.result }).toEqual({ i, status: "cancelled", result: null });
      }
    }
    // Settled for good: a completion BullMQ records later changes nothing.
    await Bun.sleep(1000);
    for (const [i, t] of tasks.entries()) expect((await job(t.id)).status).toBe(outcomes[i]![0].status === 200 ? "completed" : "cancelled");
    console.log("single-job race winners", wins);
  }, 90_000);

  test("flows: POST /v1/flows/:id/cancel against the complete of a parked child, and of a parked root", async () => {
    answers.set("/race-flow", () => ({ status: 202 }));
    const flows = await Promise.all(
      Array.from({ length: ROUNDS }, async (_, i) => {
        const url = stack.receiver.url("/race-flow");
        const root = i % 2 === 0 ? { name: "echo", children: [{ name: "http", data: { url, body: { i } } }] } : { name: "http", data: { url, body: { i } } };
        return (await http("POST", "/v1/flows", { name: `race ${i}`, root })).body as { id: string };
      }),
    );
    await waitFor(() => stack.receiver.callsTo("/race-flow").length === ROUNDS, 20_000, "every call");
    const byBody = new Map(stack.receiver.callsTo("/race-flow").map((c) => [JSON.parse(c.body).i as number, c]));
    const parkedJob = (f: any, i: number) => (i % 2 === 0 ? f.root.children[0] : f.root);
    for (const [i, f] of flows.entries()) await waitFor(async () => parkedJob(await flowOf(f.id), i).callbackUntil, 20_000, "parked");
    const outcomes = await Promise.all(
      flows.map((f, i) => Promise.all([callback(urlOf(byBody.get(i)!), "complete", { result: i }), http("POST", `/v1/flows/${f.id}/cancel`)])),
    );
    for (const [i, f] of flows.entries()) {
      const [cb, cancel] = outcomes[i]!;
      const flow = await flowDone(f.id);
      const task = parkedJob(flow, i);
      if (cb.status === 200) {
        expect({ i, status: task.status, result: task.result }).toEqual({ i, status: "completed", result: i });
        // A parked root's complete finishes the flow: the cancel finds nothing to cancel.
        if (i % 2 === 1) expect({ i, cancel: cancel.status, flow: flow.status }).toEqual({ i, cancel: 409, flow: "completed" });
        // A parked child's: the cancel, if it came second, cancels the rest.
        else expect({ i, flow: flow.status }).toEqual({ i, flow: cancel.status === 200 ? "cancelled" : "completed" });
      } else {
        expect({ i, cb: cb.status, code: cb.body?.error?.code, cancel: cancel.status }).toEqual({ i, cb: 409, code: "job_finished", cancel: 200 });
        expect({ i, status: task.status, result: task.result, flow: flow.status }).toEqual({ i, status: "cancelled", result: null, flow: "cancelled" });
      }
    }
    await Bun.sleep(1000);
    for (const [i, f] of flows.entries()) {
      const task = parkedJob(await flowOf(f.id), i);
      expect({ i, status: task.status }).toEqual({ i, status: outcomes[i]![0].status === 200 ? "completed" : "cancelled" });
    }
  }, 90_000);
});

describe("deleting a failed flow whose other jobs still run", () => {
  test("DELETE stops the running and parked jobs, removes every key of the flow from Redis, and the callback answers 409", async () => {
    const { id, call, failed } = await flowWithLiveSiblings("/delete-live", 30_000);
    const ids = [failed.root, ...failed.root.children].map((j: { id: string }) => j.id);
    expect(failed.root.children.map((c: { status: string }) => c.status)).toEqual(["failed", "active", "active"]);
    expect((await keysNaming(ids)).length).toBeGreaterThan(0);
    const del = await http("DELETE", `/v1/flows/${id}`);
    expect(del.status).toBe(204);
    expect((await http("GET", `/v1/flows/${id}`)).status).toBe(404);
    // The sleep is aborted, so its worker lets go and the last keys go with it, well before it would have ended.
    const started = Date.now();
    await waitFor(async () => (await keysNaming(ids)).length === 0, 15_000, "no key of the flow left in Redis");
    expect(Date.now() - started).toBeLessThan(15_000);
    const late = await callback(urlOf(call), "complete", { result: 1 });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("job_finished");
    const [counted] = await stack.cluster.database.sql<{ count: number }[]>`select count(*)::int as count from flow_jobs where flow_id = ${id}`;
    expect(counted!.count).toBe(0);
    expect(stack.receiver.callsTo("/delete-live").length).toBe(1);
  }, 60_000);
});
