import { describe, expect, test } from "bun:test";
import type { ReceivedCall } from "../helpers/task-receiver";
import { useTaskStack } from "../helpers/task-stack";
import { waitFor } from "../helpers/wait";
import IORedis from "ioredis";
import { REDIS_URL } from "../helpers/services";
import { connectWs } from "../helpers/ws-client";

/** Adversarial probes of http tasks: races, odd callback bodies, retries, flows. Real processes only. */
const KEY = Buffer.alloc(32, 9).toString("base64");
const WORKER_ENV = { WORKER_CONCURRENCY: "4", FLOWD_LOCK_DURATION_MS: "3000", FLOWD_STALLED_INTERVAL_MS: "1000", FLOWD_RECONCILE_INTERVAL_MS: "1000" };
const stack = useTaskStack("probe", WORKER_ENV, { FLOWD_SECRET_KEY: KEY });
const { answers, http, job, createTask, settled, callback } = stack;
const urlOf = (c: ReceivedCall) => c.headers["flowd-callback-url"]!;

describe("races", () => {
  test("a complete that arrives before the worker reads the 202 completes the job with that result", async () => {
    let early: Promise<{ status: number }> | undefined;
    answers.set("/early", (_n, call) => {
      early = callback(urlOf(call), "complete", { result: "early" });
      return { status: 202, delayMs: 500 };
    });
    const t = await createTask("/early");
    const done = await settled(t.id);
    expect((await early!).status).toBe(200);
    expect(done.status).toBe("completed");
    expect(done.result).toBe("early");
    expect(done.attemptsMade).toBe(1);
    expect(stack.receiver.callsTo("/early").length).toBe(1);
  }, 30_000);

  test("two completes at once: exactly one is accepted and its result stays", async () => {
    answers.set("/twice", () => ({ status: 202 }));
    const t = await createTask("/twice");
    const call = await waitFor(() => stack.receiver.callsTo("/twice")[0], 20_000, "the call");
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    const both = await Promise.all(["a", "b", "c", "d"].map((r) => callback(urlOf(call), "complete", { result: r })));
    const ok = both.flatMap((b, i) => (b.status === 200 ? ["abcd"[i]] : []));
    expect(ok.length).toBe(1);
    expect(both.filter((b) => b.status === 410).length).toBe(3);
    expect((await settled(t.id)).result).toBe(ok[0]);
  }, 30_000);

  test("complete racing the callback deadline: an accepted complete always completes, a refused one leaves the job failed", async () => {
    answers.set("/edge", () => ({ status: 202 }));
    const tasks = await Promise.all([0, 1, 2, 3, 4, 5].map(() => createTask("/edge", { callbackTimeoutMs: 1000 })));
    await waitFor(() => stack.receiver.callsTo("/edge").length === 6, 20_000, "calls");
    const calls = stack.receiver.callsTo("/edge");
    const byJob = new Map(calls.map((c) => [c.headers["flowd-job-id"]!, c]));
    const results = await Promise.all(
      tasks.map(async (t, i) => {
        const c = byJob.get(t.id)!;
        await Bun.sleep(Math.max(0, c.at + 850 + i * 60 - Date.now())); // spread around the deadline
        return callback(urlOf(c), "complete", { result: i });
      }),
    );
    for (const [i, t] of tasks.entries()) {
      const done = await settled(t.id);
      if (results[i]!.status === 200) {
        expect(done.status).toBe("completed");
        expect(done.result).toBe(i);
      } else {
        expect(results[i]!.status).toBe(409);
        expect(done.status).toBe("failed");
      }
    }
  }, 40_000);

  test("cancel racing complete: a cancelled job never shows a result, and both answers agree with the end state", async () => {
    answers.set("/cxl", () => ({ status: 202 }));
    const tasks = await Promise.all([0, 1, 2, 3].map(() => createTask("/cxl")));
    for (const t of tasks) await waitFor(async () => (await job(t.id)).callbackUntil, 20_000, "parked");
    const byJob = new Map(stack.receiver.callsTo("/cxl").map((c) => [c.headers["flowd-job-id"]!, c]));
    const outcomes = await Promise.all(
      tasks.map((t, i) => Promise.all([callback(urlOf(byJob.get(t.id)!), "complete", { result: i }), http("POST", `/v1/jobs/${t.id}/cancel`)])),
    );
    for (const [i, t] of tasks.entries()) {
      const [cb, cancel] = outcomes[i]!;
      const done = await settled(t.id);
      // Exactly one wins: a cancelled job's complete was refused, a completed job's cancel was.
      if (done.status === "cancelled") {
        expect(cancel.status).toBe(200);
        expect(cb.status).toBe(409);
      } else {
        expect(cancel.status).toBe(409);
        expect(done.status).toBe("completed");
        expect(done.result).toBe(i);
        expect(cb.status).toBe(200);
      }
      // Settled for good: nothing flips later.
      await Bun.sleep(300);
      expect((await job(t.id)).status).toBe(done.status);
    }
  }, 40_000);
});

describe("odd callback bodies", () => {
  test("NUL, lone surrogates and numbers beyond a double are refused with 400, and the job still waits", async () => {
    answers.set("/odd", () => ({ status: 202 }));
    const t = await createTask("/odd");
    const url = urlOf(await waitFor(() => stack.receiver.callsTo("/odd")[0], 20_000, "the call"));
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    for (const raw of ['{"result":"a\\u0000b"}', '{"result":"\\ud800"}', '{"result":{"k\\u0000":1}}', '{"result":1e400}']) {
      const res = await callback(url, "complete", undefined, raw);
      expect({ raw, status: res.status }).toEqual({ raw, status: 400 });
    }
    const nulFail = await callback(url, "fail", undefined, '{"message":"bad\\u0000"}');
    expect(nulFail.status).toBe(400);
    expect((await job(t.id)).status).toBe("active");
    expect((await callback(url, "complete", { result: { big: 12345678901234567890, n: -0 } })).status).toBe(200);
    const done = await settled(t.id);
    expect(done.status).toBe("completed");
  }, 30_000);

  test("a result just under the body limit completes the job with it", async () => {
    answers.set("/large", () => ({ status: 202 }));
    const t = await createTask("/large");
    const url = urlOf(await waitFor(() => stack.receiver.callsTo("/large")[0], 20_000, "the call"));
    const big = { rows: Array.from({ length: 9000 }, (_, i) => ({ i, s: "y".repeat(90) })) };
    const res = await callback(url, "complete", { result: big });
    expect(res.status).toBe(200);
    const done = await settled(t.id);
    expect(done.status).toBe("completed");
    expect(done.result.rows.length).toBe(9000);
  }, 30_000);
});

describe("attempts and views", () => {
  test("attemptsMade counts attempts, not wake-ups: 1 while parked, 2 on the retry's park and after its complete", async () => {
    answers.set("/count", () => ({ status: 202 }));
    const t = await createTask("/count", { heartbeatTimeoutMs: 1000 }, { attempts: 2 });
    const first = await waitFor(() => stack.receiver.callsTo("/count")[0], 20_000, "first call");
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    // Heartbeats wake the job (re-parks) a few times: none is an attempt.
    for (let i = 0; i < 4; i++) {
      expect((await callback(urlOf(first), "heartbeat")).status).toBe(200);
      await Bun.sleep(600);
      const v = await job(t.id);
      expect(v.status).toBe("active");
      expect(v.attemptsMade).toBe(1);
    }
    expect((await callback(urlOf(first), "fail", { message: "again" })).status).toBe(200);
    const second = await waitFor(() => stack.receiver.callsTo("/count")[1], 20_000, "the retry");
    await waitFor(async () => (await job(t.id)).attemptsMade === 2 && (await job(t.id)).callbackUntil, 10_000, "parked again");
    expect((await job(t.id)).status).toBe("active");
    expect((await callback(urlOf(second), "complete", { result: 2 })).status).toBe(200);
    const done = await settled(t.id);
    expect(done.attemptsMade).toBe(2);
    expect(done.result).toBe(2);
  }, 40_000);

  test("callbackUntil says when the wait ends", async () => {
    answers.set("/until", () => ({ status: 202 }));
    const before = Date.now();
    const t = await createTask("/until", { callbackTimeoutMs: 120_000, heartbeatTimeoutMs: 5_000 });
    await waitFor(async () => (await job(t.id)).callbackUntil, 20_000, "parked");
    const until = Date.parse((await job(t.id)).callbackUntil);
    // With a heartbeat timeout the attempt fails 5 s from now unless a heartbeat comes.
    expect(until - before).toBeLessThan(10_000);
    // A heartbeat moves it.
    const url = urlOf(stack.receiver.callsTo("/until")[0]!);
    const beat = await callback(url, "heartbeat");
    expect(beat.status).toBe(200);
    expect((await job(t.id)).callbackUntil).toBe(beat.body.heartbeatBy);
    expect((await callback(url, "complete", { result: "ok" })).status).toBe(200);
    expect((await settled(t.id)).result).toBe("ok");
  }, 30_000);
});

describe("flows", () => {
  test("retry of a flow whose http child timed out calls again, parks, and completes", async () => {
    answers.set("/flow-timeout", () => ({ status: 202 }));
    const res = await http("POST", "/v1/flows", { name: "ft", root: { name: "echo", data: {}, children: [{ name: "http", data: { url: stack.receiver.url("/flow-timeout"), callbackTimeoutMs: 1000 } }] } });
    const flowId = res.body.id;
    await waitFor(async () => (await http("GET", `/v1/flows/${flowId}`)).body.status === "failed", 20_000, "flow failed");
    expect((await http("POST", `/v1/flows/${flowId}/retry`)).status).toBe(200);
    const second = await waitFor(() => stack.receiver.callsTo("/flow-timeout")[1], 20_000, "the retry's call");
    const child = async () => (await http("GET", `/v1/flows/${flowId}`)).body.root.children[0];
    await waitFor(async () => (await child()).callbackUntil, 10_000, "child parked");
    expect((await child()).status).toBe("active");
    const old = stack.receiver.callsTo("/flow-timeout")[0]!;
    expect((await callback(urlOf(old), "complete", { result: "old" })).status).toBe(409);
    expect((await callback(urlOf(second), "complete", { result: "new" })).status).toBe(200);
    const flow = await waitFor(async () => {
      const f = (await http("GET", `/v1/flows/${flowId}`)).body;
      return f.status === "completed" && f;
    }, 20_000, "flow completed");
    expect(Object.values(flow.root.result.children)).toEqual(["new"]);
  }, 60_000);

  test("retry of a flow failed by a sibling while an http child was parked: the child keeps its call and its URL, and its complete finishes the flow", async () => {
    answers.set("/sib-park", () => ({ status: 202 }));
    answers.set("/sib-bad", (n) => (n === 1 ? { status: 400 } : { status: 200 }));
    const res = await http("POST", "/v1/flows", {
      name: "sib",
      root: { name: "echo", data: {}, children: [{ name: "http", data: { url: stack.receiver.url("/sib-park") } }, { name: "http", data: { url: stack.receiver.url("/sib-bad") } }] },
    });
    const flowId = res.body.id;
    const parkedChild = async () => ((await http("GET", `/v1/flows/${flowId}`)).body.root.children as any[]).find((c) => c.data.url.endsWith("/sib-park"));
    await waitFor(async () => (await parkedChild()).callbackUntil, 20_000, "parked");
    await waitFor(async () => (await http("GET", `/v1/flows/${flowId}`)).body.status === "failed", 20_000, "flow failed");
    const before = await parkedChild();
    expect((await http("POST", `/v1/flows/${flowId}/retry`)).status).toBe(200);
    await waitFor(() => stack.receiver.callsTo("/sib-bad")[1], 20_000, "the failed sibling called again");
    // The parked child is not run again: same id, still parked, its service called once.
    const after = await parkedChild();
    expect(after.jobId).toBe(before.jobId);
    expect(after.status).toBe("active");
    expect(after.callbackUntil).toBe(before.callbackUntil);
    const call = stack.receiver.callsTo("/sib-park")[0]!;
    expect((await callback(urlOf(call), "complete", { result: "kept" })).status).toBe(200);
    const flow = await waitFor(async () => {
      const f = (await http("GET", `/v1/flows/${flowId}`)).body;
      return f.status === "completed" && f;
    }, 20_000, "flow completed");
    expect(flow.root.result.children[before.jobId]).toBe("kept");
    expect(stack.receiver.callsTo("/sib-park").length).toBe(1);
  }, 60_000);

  test("cancelling a flow with a parked child: its callback answers 409 and nothing changes at the deadline", async () => {
    answers.set("/flow-cxl", () => ({ status: 202 }));
    const res = await http("POST", "/v1/flows", { name: "fc", root: { name: "echo", data: {}, children: [{ name: "http", data: { url: stack.receiver.url("/flow-cxl"), callbackTimeoutMs: 1500 } }] } });
    const flowId = res.body.id;
    const call = await waitFor(() => stack.receiver.callsTo("/flow-cxl")[0], 20_000, "the call");
    await waitFor(async () => (await http("GET", `/v1/flows/${flowId}`)).body.root.children[0].callbackUntil, 10_000, "parked");
    expect((await http("POST", `/v1/flows/${flowId}/cancel`)).status).toBe(200);
    const cb = await callback(urlOf(call), "complete", { result: 1 });
    expect(cb.status).toBe(409);
    await Bun.sleep(2500); // past the callback deadline: a timeout must not overwrite the cancel
    const f = (await http("GET", `/v1/flows/${flowId}`)).body;
    expect(f.status).toBe("cancelled");
    expect(f.root.children[0].status).toBe("cancelled");
  }, 30_000);
});

describe("Retry-After", () => {
  test("a fractional or negative Retry-After is not a date: the configured backoff applies", async () => {
    answers.set("/ra-frac", (n) => (n === 1 ? { status: 429, headers: { "retry-after": "2.5" } } : { status: 200 }));
    const t = await createTask("/ra-frac", {}, { attempts: 2, backoff: { type: "fixed", delay: 1500 } });
    await settled(t.id);
    const [a, b] = stack.receiver.callsTo("/ra-frac");
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(1500);
  }, 30_000);
});

describe("faults", () => {
  test("a parked job whose Redis keys were deleted is added again still parked: no second call, and its callback URL completes it", async () => {
    answers.set("/lost", () => ({ status: 202 }));
    const t = await createTask("/lost");
    const first = await waitFor(() => stack.receiver.callsTo("/lost")[0], 20_000, "the call");
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    const view = await job(t.id);
    const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const queue = view.queueName;
      const removed = await redis.del(`${stack.cluster.prefix}:${queue}:${view.jobId}`);
      expect(removed).toBe(1);
      await redis.zrem(`${stack.cluster.prefix}:${queue}:delayed`, view.jobId);
      // The reconciler adds it again under a new BullMQ id, and its first run parks it again on the same wait.
      const resumed = await waitFor(async () => {
        const v = await job(t.id);
        return v.jobId !== view.jobId && (await redis.zscore(`${stack.cluster.prefix}:${queue}:delayed`, v.jobId)) !== null && v;
      }, 30_000, "the job added again and parked");
      expect(resumed.status).toBe("active");
      expect(resumed.callbackUntil).toBe(view.callbackUntil);
      expect(resumed.attemptsMade).toBe(1);
    } finally {
      redis.disconnect();
    }
    expect(stack.receiver.callsTo("/lost").length).toBe(1);
    expect((await callback(urlOf(first), "complete", { result: "kept" })).status).toBe(200);
    const done = await settled(t.id);
    expect(done.status).toBe("completed");
    expect(done.result).toBe("kept");
    expect(done.attemptsMade).toBe(1);
    expect(stack.receiver.callsTo("/lost").length).toBe(1);
  }, 60_000);

  test("a worker killed right after a complete is accepted: the restarted worker applies it, nothing is called again", async () => {
    answers.set("/kill-after", () => ({ status: 202 }));
    const created = await Promise.all([1, 2, 3, 4].map((i) => createTask("/kill-after", { body: { i } })));
    for (const c of created) await waitFor(async () => (await job(c.id)).callbackUntil, 20_000, "parked");
    const calls = stack.receiver.callsTo("/kill-after");
    const answered = await Promise.all(calls.map((c) => callback(urlOf(c), "complete", { result: JSON.parse(c.body).i })));
    expect(answered.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    await stack.cluster.workers[stack.cluster.workers.length - 1]!.stop("SIGKILL");
    await stack.cluster.startWorker({ ...WORKER_ENV, FLOWD_PUBLIC_URL: stack.api.url });
    for (const [i, c] of created.entries()) {
      const done = await settled(c.id, 30_000).catch(async (err) => {
        console.log("STUCK", JSON.stringify(await job(c.id)), JSON.stringify(await stack.cluster.database.sql`select * from task_callbacks where job_id = ${c.jobId}`));
        const r = new IORedis(REDIS_URL);
        const keys = await r.keys(`${stack.cluster.prefix}:*`);
        console.log(keys.filter((k) => !k.includes(":events")).join(" "));
        for (const k of keys.filter((k) => k.endsWith(c.jobId))) console.log(k, JSON.stringify(await r.hgetall(k)));
        for (const s of ["wait", "active", "delayed", "paused", "prioritized"]) console.log(s, await r.type(`${stack.cluster.prefix}:jobs:${s}`));
        r.disconnect();
        throw err;
      });
      expect(done.status).toBe("completed");
      expect(done.result).toBe(i + 1);
      expect(done.attemptsMade).toBe(1);
    }
    expect(stack.receiver.callsTo("/kill-after").length).toBe(4);
  }, 60_000);

  test("heartbeat racing its deadline: an accepted heartbeat is honoured (no heartbeat timeout before the heartbeatBy it returned)", async () => {
    answers.set("/hb-race", () => ({ status: 202 }));
    const tasks = await Promise.all(Array.from({ length: 8 }, () => createTask("/hb-race", { heartbeatTimeoutMs: 1000 })));
    await waitFor(() => stack.receiver.callsTo("/hb-race").length === 8, 20_000, "calls");
    const byJob = new Map(stack.receiver.callsTo("/hb-race").map((c) => [c.headers["flowd-job-id"]!, c]));
    const beats = await Promise.all(
      tasks.map(async (t, i) => {
        const c = byJob.get(t.id)!;
        await Bun.sleep(Math.max(0, c.at + 900 + i * 30 - Date.now()));
        return callback(urlOf(c), "heartbeat");
      }),
    );
    for (const [i, t] of tasks.entries()) {
      const b = beats[i]!;
      if (b.status !== 200) continue;
      const by = Date.parse(b.body.heartbeatBy);
      // Until heartbeatBy the job may not have failed for want of a heartbeat.
      while (Date.now() < by - 100) {
        const v = await job(t.id);
        expect({ i, status: v.status }).toEqual({ i, status: "active" });
        await Bun.sleep(50);
      }
    }
    for (const t of tasks) await http("POST", `/v1/jobs/${t.id}/cancel`);
  }, 40_000);
});

describe("socket", () => {
  test("a parked job's updates on the socket: active, then completed; its delays and wake-ups are not states", async () => {
    const socket = await connectWs(stack.api.wsUrl, stack.cluster.token);
    socket.send({ op: "subscribe", all: true });
    await socket.next((m) => m.type === "subscribed");
    answers.set("/ws", () => ({ status: 202 }));
    const t = await createTask("/ws", { heartbeatTimeoutMs: 1000 });
    const url = urlOf(await waitFor(() => stack.receiver.callsTo("/ws")[0], 20_000, "the call"));
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    for (let i = 0; i < 3; i++) {
      expect((await callback(url, "heartbeat")).status).toBe(200);
      await Bun.sleep(700); // the service's heartbeat period: each wakes and re-parks the job
    }
    expect((await callback(url, "complete", { result: "ws" })).status).toBe(200);
    const mine = (m: any) => JSON.stringify(m).includes(t.id);
    await socket.next((m) => mine(m) && JSON.stringify(m).includes('"completed"'), 10_000);
    const statuses = socket.messages.filter(mine).map((m) => m.status ?? m.job?.status ?? m.data?.status);
    socket.close();
    expect(statuses).toContain("active");
    expect(statuses.filter((s) => s !== undefined && !["waiting", "active", "completed"].includes(s))).toEqual([]);
    expect(statuses.filter((s) => s === "completed").length).toBe(1);
    // Once active, never back to waiting while parked.
    const firstActive = statuses.indexOf("active");
    expect(statuses.slice(firstActive).filter((s) => s === "waiting")).toEqual([]);
  }, 30_000);
});

describe("a service that dedups by webhook-id", () => {
  test("killed during the call, called again with the same webhook-id: a complete on the first URL finishes the job promptly", async () => {
    // The first call's answer comes after the worker is gone; the repeat (same webhook-id) is acknowledged
    // with 202 as a duplicate, and the service reports its one piece of work on the URL it got first.
    answers.set("/dedup", (n) => (n === 1 ? { status: 202, delayMs: 3000 } : { status: 202 }));
    const t = await createTask("/dedup");
    const first = await waitFor(() => stack.receiver.callsTo("/dedup")[0], 20_000, "the first call");
    await stack.cluster.workers[stack.cluster.workers.length - 1]!.stop("SIGKILL");
    await stack.cluster.startWorker({ ...WORKER_ENV, FLOWD_PUBLIC_URL: stack.api.url });
    const second = await waitFor(() => stack.receiver.callsTo("/dedup")[1], 30_000, "the call made again");
    expect(second.headers["webhook-id"]).toBe(first.headers["webhook-id"]);
    await waitFor(async () => (await job(t.id)).callbackUntil, 20_000, "parked after the second call");
    const res = await callback(urlOf(first), "complete", { result: "first" });
    if (res.status === 200) {
      const done = await settled(t.id, 10_000);
      expect(done.result).toBe("first");
    } else {
      // Refusing the superseded URL is as good, provided it says so.
      expect([409, 410]).toContain(res.status);
    }
  }, 60_000);
});

describe("a service that dedups by webhook-id, reporting while the repeat is answered", () => {
  test("the complete on the first URL lands while the repeated call is still being answered: the job still completes promptly", async () => {
    let first: ReceivedCall | undefined;
    let report: Promise<{ status: number }> | undefined;
    answers.set("/dedup-early", (n, call) => {
      if (n === 1) {
        first = call;
        return { status: 202, delayMs: 3000 };
      }
      report = callback(urlOf(first!), "complete", { result: "first" });
      return { status: 202, delayMs: 500 };
    });
    const t = await createTask("/dedup-early");
    await waitFor(() => stack.receiver.callsTo("/dedup-early")[0], 20_000, "the first call");
    await stack.cluster.workers[stack.cluster.workers.length - 1]!.stop("SIGKILL");
    await stack.cluster.startWorker({ ...WORKER_ENV, FLOWD_PUBLIC_URL: stack.api.url });
    await waitFor(() => stack.receiver.callsTo("/dedup-early")[1], 30_000, "the call made again");
    expect((await report!).status).toBe(200);
    const done = await settled(t.id, 10_000);
    expect(done.result).toBe("first");
  }, 60_000);
});

describe("more edges", () => {
  test("two attempts that both time out: attemptsMade 2, each call numbered, failed with the timeout", async () => {
    answers.set("/tt", () => ({ status: 202 }));
    const t = await createTask("/tt", { callbackTimeoutMs: 1000 }, { attempts: 2 });
    const done = await settled(t.id, 20_000);
    expect(done.status).toBe("failed");
    expect(done.attemptsMade).toBe(2);
    expect(done.error.message).toContain("callbackTimeoutMs");
    expect(stack.receiver.callsTo("/tt").map((c) => c.headers["flowd-attempt"])).toEqual(["1", "2"]);
  }, 30_000);

  test("cancelled while its call is in flight: the 202 parks nothing, the callback answers 409, the job stays cancelled", async () => {
    answers.set("/cxl-flight", () => ({ status: 202, delayMs: 1500 }));
    const t = await createTask("/cxl-flight");
    const call = await waitFor(() => stack.receiver.callsTo("/cxl-flight")[0], 20_000, "the call");
    expect((await http("POST", `/v1/jobs/${t.id}/cancel`)).status).toBe(200);
    await Bun.sleep(2000); // the 202 has been read by now
    const res = await callback(urlOf(call), "complete", { result: 1 });
    expect(res.status).toBe(409);
    const v = await job(t.id);
    expect(v.status).toBe("cancelled");
    expect(v.callbackUntil).toBeUndefined();
  }, 30_000);

  test("a heartbeat's heartbeatBy never promises past the callback deadline", async () => {
    answers.set("/hb-cap", () => ({ status: 202 }));
    const t = await createTask("/hb-cap", { callbackTimeoutMs: 2000, heartbeatTimeoutMs: 60_000 });
    const call = await waitFor(() => stack.receiver.callsTo("/hb-cap")[0], 20_000, "the call");
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    const beat = await callback(urlOf(call), "heartbeat");
    expect(beat.status).toBe(200);
    expect(Date.parse(beat.body.heartbeatBy)).toBeLessThanOrEqual(Date.parse((await job(t.id)).callbackUntil));
    await settled(t.id);
  }, 30_000);
});
