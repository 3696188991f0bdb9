import { describe, expect, test } from "bun:test";
import { Webhook } from "standardwebhooks";
import { useTaskStack } from "../helpers/task-stack";
import { waitFor } from "../helpers/wait";

/**
 * HTTP tasks end to end (the binary in CI): an API process, a worker process with concurrency 2
 * whose callback URLs point at the API, and a local service that answers as each test needs.
 */
const KEY = Buffer.alloc(32, 7).toString("base64");
// Short locks, so a killed worker's running job runs again within seconds.
const WORKER_ENV = { WORKER_CONCURRENCY: "2", FLOWD_LOCK_DURATION_MS: "3000", FLOWD_STALLED_INTERVAL_MS: "1000" };
const stack = useTaskStack("task", WORKER_ENV, { FLOWD_SECRET_KEY: KEY });
const { answers, http, job, createTask, settled, callback } = stack;

describe("signing", () => {
  test("the standardwebhooks verifier accepts a task's request, and after a rotation both secrets during the overlap", async () => {
    const secret = (await http("GET", "/v1/signing-secret")).body;
    expect(secret.secret).toMatch(/^whsec_/);
    expect(secret.previousSecret).toBeNull();
    const first = await createTask("/signed");
    await settled(first.id);
    const [call] = stack.receiver.callsTo("/signed");
    expect(() => new Webhook(secret.secret).verify(call!.body, call!.headers)).not.toThrow();
    expect(call!.headers["flowd-job-id"]).toBe(first.id);
    expect(call!.headers["flowd-attempt"]).toBe("1");
    expect(call!.headers["flowd-callback-url"]).toStartWith(`${stack.api.url}/callbacks/`);
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 1).toString("base64")}`).verify(call!.body, call!.headers)).toThrow();

    const rotated = await http("POST", "/v1/signing-secret/rotate");
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(secret.secret);
    expect(rotated.body.previousSecret).toBe(secret.secret);
    expect(Date.parse(rotated.body.previousValidUntil) - Date.now()).toBeGreaterThan(23 * 3600_000);
    const second = await createTask("/signed-after");
    await settled(second.id);
    const [after] = stack.receiver.callsTo("/signed-after");
    expect(() => new Webhook(rotated.body.secret).verify(after!.body, after!.headers)).not.toThrow();
    expect(() => new Webhook(secret.secret).verify(after!.body, after!.headers)).not.toThrow();
    // A database dump alone does not hold the secret: it is sealed under FLOWD_SECRET_KEY.
    const rows = await stack.cluster.database.sql`select secret, previous_secret from signing_secrets`;
    expect(rows.length).toBe(1);
    expect(String(rows[0]!.secret)).toStartWith("v1:");
    expect(String(rows[0]!.secret)).not.toContain(rotated.body.secret.slice(6));
  }, 60_000);

  test("a flow job's request names its flow, and a header the job sets cannot forge the signature", async () => {
    const res = await http("POST", "/v1/flows", {
      name: "signed-flow",
      root: { name: "http", data: { url: stack.receiver.url("/flow-call"), headers: { "webhook-signature": "v1,forged", "x-own": "kept" } } },
    });
    expect(res.status).toBe(201);
    await waitFor(async () => (await http("GET", `/v1/flows/${res.body.id}`)).body.status === "completed", 20_000, "flow completed");
    const [call] = stack.receiver.callsTo("/flow-call");
    expect(call!.headers["flowd-flow-id"]).toBe(res.body.id);
    expect(call!.headers["x-own"]).toBe("kept");
    expect(call!.headers["webhook-signature"]).not.toContain("forged");
  }, 40_000);
});

describe("parking on 202", () => {
  test("eight parked tasks on concurrency 2 are all called before any completes, then each completes with its own result", async () => {
    answers.set("/park", () => ({ status: 202 }));
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => createTask("/park", { body: { i } })));
    await waitFor(() => stack.receiver.callsTo("/park").length === 8, 20_000, "all eight calls while none completed");
    // Parked jobs show active (with the deadline) although BullMQ holds them as delayed.
    for (const c of created) await waitFor(async () => (await job(c.id)).status === "active", 10_000, "parked job shown active");
    const parked = await job(created[0]!.id);
    expect(Date.parse(parked.callbackUntil) - Date.now()).toBeGreaterThan(50 * 60_000);
    for (const call of stack.receiver.callsTo("/park")) {
      const i = JSON.parse(call.body).i;
      const res = await callback(call.headers["flowd-callback-url"]!, "complete", { result: { i, done: true } });
      expect(res.status).toBe(200);
      expect(res.body.accepted).toBe("complete");
    }
    for (const [i, c] of created.entries()) {
      const done = await settled(c.id);
      expect(done.status).toBe("completed");
      expect(done.result).toEqual({ i, done: true });
      expect(done.attemptsMade).toBe(1);
      expect(done.callbackUntil).toBeUndefined();
    }
    // Single use: a second complete is refused, and the first result stays.
    const url = stack.receiver.callsTo("/park")[0]!.headers["flowd-callback-url"]!;
    const again = await callback(url, "complete", { result: "second" });
    expect(again.status).toBe(410);
    expect(again.body.error.code).toBe("callback_used");
    const i = JSON.parse(stack.receiver.callsTo("/park")[0]!.body).i;
    expect((await job(created[i]!.id)).result).toEqual({ i, done: true });
    expect((await callback(url, "fail", { message: "late" })).status).toBe(410);
  }, 60_000);

  test("a parked flow child's callback result reaches its parent like any child's", async () => {
    answers.set("/child", () => ({ status: 202 }));
    const res = await http("POST", "/v1/flows", { name: "parked-child", root: { name: "echo", data: {}, children: [{ name: "http", data: { url: stack.receiver.url("/child") } }] } });
    const call = await waitFor(() => stack.receiver.callsTo("/child")[0], 20_000, "the child's call");
    expect((await callback(call.headers["flowd-callback-url"]!, "complete", { result: { rows: 42 } })).status).toBe(200);
    const flow = await waitFor(async () => {
      const f = (await http("GET", `/v1/flows/${res.body.id}`)).body;
      return f.status === "completed" && f;
    }, 20_000, "flow completed");
    expect(Object.values(flow.root.result.children)).toEqual([{ rows: 42 }]);
  }, 40_000);

  test("a parked task fails at its callback deadline, saying so", async () => {
    answers.set("/never", () => ({ status: 202 }));
    const t = await createTask("/never", { callbackTimeoutMs: 1500 });
    const done = await settled(t.id);
    expect(done.status).toBe("failed");
    expect(done.error.message).toContain("callbackTimeoutMs");
    const url = stack.receiver.callsTo("/never")[0]!.headers["flowd-callback-url"]!;
    const late = await callback(url, "complete", { result: 1 });
    expect(late.status).toBe(409);
  }, 30_000);

  test("heartbeats keep a parked task alive past heartbeatTimeoutMs; without them it fails", async () => {
    answers.set("/beats", () => ({ status: 202 }));
    answers.set("/silent", () => ({ status: 202 }));
    const beating = await createTask("/beats", { heartbeatTimeoutMs: 1500 });
    const silent = await createTask("/silent", { heartbeatTimeoutMs: 1500 });
    const url = (await waitFor(() => stack.receiver.callsTo("/beats")[0], 20_000, "the call")).headers["flowd-callback-url"]!;
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      const beat = await callback(url, "heartbeat");
      expect(beat.status).toBe(200);
      expect(Date.parse(beat.body.heartbeatBy)).toBeGreaterThan(Date.now());
      await Bun.sleep(400); // the service's own heartbeat period, not a wait for flowd
    }
    expect((await job(beating.id)).status).toBe("active");
    expect((await callback(url, "complete", { result: "alive" })).status).toBe(200);
    expect((await settled(beating.id)).result).toBe("alive");
    const failed = await settled(silent.id);
    expect(failed.status).toBe("failed");
    expect(failed.error.message).toContain("heartbeatTimeoutMs");
  }, 40_000);

  test("a fail callback fails the attempt and the retry calls again; a permanent one ends it", async () => {
    answers.set("/retry-me", () => ({ status: 202 }));
    const t = await createTask("/retry-me", {}, { attempts: 2 });
    const first = await waitFor(() => stack.receiver.callsTo("/retry-me")[0], 20_000, "first call");
    expect((await callback(first.headers["flowd-callback-url"]!, "fail", { message: "disk full" })).status).toBe(200);
    const second = await waitFor(() => stack.receiver.callsTo("/retry-me")[1], 20_000, "the retry's call");
    expect(second.headers["flowd-attempt"]).toBe("2");
    expect(second.headers["flowd-callback-url"]).not.toBe(first.headers["flowd-callback-url"]);
    expect((await callback(second.headers["flowd-callback-url"]!, "fail", { message: "bad input", permanent: true })).status).toBe(200);
    const done = await settled(t.id);
    expect(done.status).toBe("failed");
    expect(done.error.message).toContain("bad input");
    expect(done.attemptsMade).toBe(2);
  }, 40_000);

  test("cancelling a parked job works, and its callback then answers 409", async () => {
    answers.set("/cancel-me", () => ({ status: 202 }));
    const t = await createTask("/cancel-me");
    const call = await waitFor(() => stack.receiver.callsTo("/cancel-me")[0], 20_000, "the call");
    await waitFor(async () => (await job(t.id)).callbackUntil, 10_000, "parked");
    expect((await http("POST", `/v1/jobs/${t.id}/cancel`)).status).toBe(200);
    const res = await callback(call.headers["flowd-callback-url"]!, "complete", { result: 1 });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("job_finished");
    expect((await job(t.id)).status).toBe("cancelled");
  }, 30_000);
});

describe("answers", () => {
  test("a 400 is called once although attempts is 3", async () => {
    answers.set("/bad", () => ({ status: 400, body: { error: "no" } }));
    const t = await createTask("/bad", {}, { attempts: 3, backoff: { type: "fixed", delay: 100 } });
    const done = await settled(t.id);
    expect(done.status).toBe("failed");
    expect(done.error.message).toContain("answered 400");
    await Bun.sleep(500); // a retry would have come by now (backoff 100 ms): none may
    expect(stack.receiver.callsTo("/bad").length).toBe(1);
  }, 30_000);

  test("a 429 with Retry-After: 2 is called again no sooner than 2 s later; 408 and 5xx are retried", async () => {
    answers.set("/busy", (n) => (n === 1 ? { status: 429, headers: { "retry-after": "2" } } : { status: 200, body: { n } }));
    answers.set("/flaky", (n) => (n === 1 ? { status: 503 } : n === 2 ? { status: 408 } : { status: 200, body: { n } }));
    const busy = await createTask("/busy", {}, { attempts: 2 });
    const flaky = await createTask("/flaky", {}, { attempts: 3 });
    expect((await settled(busy.id)).result).toEqual({ status: 200, body: { n: 2 } });
    const [a, b] = stack.receiver.callsTo("/busy");
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(2000);
    expect((await settled(flaky.id)).result).toEqual({ status: 200, body: { n: 3 } });
  }, 30_000);
});

describe("webhooks on the default schedule", () => {
  test("a delivery whose receiver answered 500 is retried within 30 s", async () => {
    answers.set("/hook", (n) => (n === 1 ? { status: 500 } : { status: 200 }));
    const hook = await http("POST", "/v1/webhooks", { url: stack.receiver.url("/hook"), events: ["flow.completed"] });
    expect(hook.status).toBe(201);
    await http("POST", "/v1/flows", { name: "hooked", root: { name: "echo", data: {} } });
    const first = await waitFor(() => stack.receiver.callsTo("/hook")[0], 20_000, "first delivery");
    const second = await waitFor(() => stack.receiver.callsTo("/hook")[1], 30_000, "the retry");
    expect(second.at - first.at).toBeLessThan(30_000);
    expect(second.at - first.at).toBeGreaterThanOrEqual(4000); // 5 s with ±10% jitter
    expect(second.headers["webhook-id"]).toBe(first.headers["webhook-id"]);
  }, 60_000);
});

describe("bad input", () => {
  test("callback timeouts out of range are refused at creation, and nothing is created", async () => {
    const before = (await http("GET", "/v1/jobs?limit=100")).body.items.length;
    for (const data of [{ callbackTimeoutMs: 999 }, { callbackTimeoutMs: 8 * 86_400_000 }, { heartbeatTimeoutMs: 0 }, { heartbeatTimeoutMs: "1000" }, { timeoutMs: 900_001 }]) {
      const res = await http("POST", "/v1/jobs", { name: "http", data: { url: stack.receiver.url("/x"), ...data } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_job_data");
    }
    expect((await http("GET", "/v1/jobs?limit=100")).body.items.length).toBe(before);
  });

  test("unknown, malformed and used callback paths; malformed, non-JSON and oversized bodies", async () => {
    const unknown = await callback(`${stack.api.url}/callbacks/${"A".repeat(43)}`, "complete", { result: 1 });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("not_found");
    expect((await callback(`${stack.api.url}/callbacks/short`, "complete", { result: 1 })).status).toBe(404);
    expect((await callback(`${stack.api.url}/callbacks/${"A".repeat(43)}`, "explode", {})).status).toBe(404);

    answers.set("/inputs", () => ({ status: 202 }));
    const t = await createTask("/inputs");
    const url = (await waitFor(() => stack.receiver.callsTo("/inputs")[0], 20_000, "the call")).headers["flowd-callback-url"]!;
    const notJson = await callback(url, "complete", undefined, "{result: not json}");
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe("invalid_json");
    const extra = await callback(url, "complete", { result: 1, status: "done" });
    expect(extra.status).toBe(400);
    const noMessage = await callback(url, "fail", { permanent: true });
    expect(noMessage.status).toBe(400);
    const huge = await callback(url, "complete", { result: "x".repeat(1_100_000) });
    expect(huge.status).toBe(413);
    // None of that touched the job: it still waits, and the URL still works once.
    expect((await job(t.id)).status).toBe("active");
    expect((await callback(url, "complete", { result: "fine" })).status).toBe(200);
    expect((await settled(t.id)).result).toBe("fine");
  }, 40_000);

  test("a callback flood from one address is refused with 429 and Retry-After", async () => {
    const statuses = await Promise.all(
      Array.from({ length: 400 }, () => fetch(`${stack.api.url}/callbacks/${"B".repeat(43)}/heartbeat`, { method: "POST" }).then((r) => [r.status, r.headers.get("retry-after")] as const)),
    );
    const limited = statuses.filter(([s]) => s === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(Number(limited[0]![1])).toBeGreaterThanOrEqual(1);
    expect(statuses.filter(([s]) => s === 404).length).toBeGreaterThan(0);
  }, 30_000);
});

describe("faults", () => {
  test("a worker killed with kill -9 while tasks are parked: a new worker applies their callbacks, and nothing is called twice", async () => {
    answers.set("/parked-kill", () => ({ status: 202 }));
    const created = await Promise.all([1, 2, 3].map((i) => createTask("/parked-kill", { body: { i } })));
    for (const c of created) await waitFor(async () => (await job(c.id)).callbackUntil, 20_000, "parked");
    await stack.cluster.workers[0]!.stop("SIGKILL");
    await stack.cluster.startWorker({ ...WORKER_ENV, FLOWD_PUBLIC_URL: stack.api.url });
    for (const call of stack.receiver.callsTo("/parked-kill"))
      expect((await callback(call.headers["flowd-callback-url"]!, "complete", { result: JSON.parse(call.body).i })).status).toBe(200);
    for (const [i, c] of created.entries()) expect((await settled(c.id)).result).toBe(i + 1);
    expect(stack.receiver.callsTo("/parked-kill").length).toBe(3);
  }, 60_000);

  test("a worker killed during the call: the attempt runs again with the same webhook-id and a new callback URL", async () => {
    // The first call is answered only after the worker is gone; the second parks normally.
    answers.set("/call-kill", (n) => (n === 1 ? { status: 202, delayMs: 3000 } : { status: 202 }));
    const t = await createTask("/call-kill");
    const first = await waitFor(() => stack.receiver.callsTo("/call-kill")[0], 20_000, "the first call");
    await stack.cluster.workers[stack.cluster.workers.length - 1]!.stop("SIGKILL");
    await stack.cluster.startWorker({ ...WORKER_ENV, FLOWD_PUBLIC_URL: stack.api.url });
    const second = await waitFor(() => stack.receiver.callsTo("/call-kill")[1], 30_000, "the call made again");
    expect(second.headers["webhook-id"]).toBe(first.headers["webhook-id"]);
    expect(second.headers["flowd-callback-url"]).not.toBe(first.headers["flowd-callback-url"]);
    await waitFor(async () => (await job(t.id)).callbackUntil, 20_000, "parked after the second call");
    expect((await callback(second.headers["flowd-callback-url"]!, "complete", { result: "second" })).status).toBe(200);
    expect((await settled(t.id)).result).toBe("second");
  }, 60_000);
});
