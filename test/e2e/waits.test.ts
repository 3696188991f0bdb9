import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";
import { startWebhookReceiver } from "../helpers/webhook-receiver";

/**
 * Wait steps with the API and a worker as separate processes (the compiled binary under FLOWD_BIN):
 * signals by id and by key continue a graph with the payload as the dependency's result, a signal's
 * timeout fails it with `timed_out`, a single-use completion URL completes one without a token,
 * and bad input is refused with nothing written.
 */
let c: Cluster;
const rx = startWebhookReceiver();

beforeAll(async () => {
  c = await startCluster({ tag: "waits" });
}, 120_000);
afterAll(async () => {
  rx.stop();
  await c?.stop();
}, 60_000);

type GraphJob = { key: string; name: string; data?: Record<string, unknown>; dependsOn?: string[]; opts?: Record<string, unknown> };
const http = () => c.apis[0]!.http;

async function createGraph(jobs: GraphJob[]) {
  const res = await http()("POST", "/v1/flows", { name: "w", jobs });
  expect(res.status).toBe(201);
  return res.body as { id: string; jobs: { id: string; key: string; status: string }[] };
}

async function flow(id: string) {
  const res = await http()("GET", `/v1/flows/${id}`);
  expect(res.status).toBe(200);
  return res.body as { status: string; jobs: { id: string; key: string; status: string; result: any; error: any; waitingFor?: { reason: string; key?: string; until?: string } }[] };
}

const finished = (id: string, ms = 30_000) =>
  waitFor(async () => {
    const res = await http()("GET", `/v1/flows/${id}?wait=5`);
    return res.body.status !== "running" ? (res.body as Awaited<ReturnType<typeof flow>>) : null;
  }, ms, `flow ${id} to finish`);

/** The step with this key, once it is parked waiting. */
const parked = (flowId: string, key: string, reason: string) =>
  waitFor(async () => {
    const job = (await flow(flowId)).jobs.find((j) => j.key === key)!;
    return job.status === "active" && job.waitingFor?.reason === reason ? job : null;
  }, 20_000, `${key} to wait for ${reason}`);

const signalGraph = (data: Record<string, unknown>) => [
  { key: "pay", name: "signal", data },
  { key: "ship", name: "echo", data: { step: "ship" }, dependsOn: ["pay"] },
];

describe("signal steps", () => {
  test("a signal by id completes the step with its payload, and its dependent gets it as the dependency's result", async () => {
    const f = await createGraph(signalGraph({}));
    const pay = await parked(f.id, "pay", "signal");
    expect(pay.waitingFor!.until).toBeUndefined();
    const res = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: { paid: 42 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: pay.id, accepted: "signal" });
    const done = await finished(f.id);
    expect(done.status).toBe("completed");
    const byKey = Object.fromEntries(done.jobs.map((j) => [j.key, j]));
    expect(byKey.pay!.result).toEqual({ paid: 42 });
    expect(byKey.ship!.result).toEqual({ data: { step: "ship" }, parents: { pay: { paid: 42 } } });
    expect(byKey.pay!.waitingFor).toBeUndefined();
    // A second signal: the job is no longer waiting, and the answer names its status.
    const again = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: 1 });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("not_waiting");
    expect(again.body.error.message).toContain("'completed'");
  });

  test("a signal by key completes every step of the user waiting on it, and no other user's", async () => {
    const key = `order-${Date.now()}`;
    const a = await createGraph(signalGraph({ key }));
    const b = await createGraph(signalGraph({ key }));
    const other = await c.newUser("mallory");
    const otherFlow = await http()("POST", "/v1/flows", { name: "o", jobs: signalGraph({ key }) }, { token: other });
    expect(otherFlow.status).toBe(201);
    expect((await parked(a.id, "pay", "signal")).waitingFor).toEqual({ reason: "signal", key });
    await parked(b.id, "pay", "signal");
    const res = await http()("POST", "/v1/signals", { key, payload: { via: "key" } });
    expect(res.status).toBe(200);
    expect(res.body.jobs).toHaveLength(2);
    for (const f of [a, b]) {
      const done = await finished(f.id);
      expect(done.status).toBe("completed");
      expect(done.jobs.find((j) => j.key === "ship")!.result.parents).toEqual({ pay: { via: "key" } });
    }
    // mallory's step still waits; a key nobody waits on completes nothing.
    const theirs = await http()("GET", `/v1/flows/${otherFlow.body.id}`, undefined, { token: other });
    expect(theirs.body.status).toBe("running");
    const none = await http()("POST", "/v1/signals", { key: "nobody-waits", payload: 1 });
    expect(none.status).toBe(200);
    expect(none.body.jobs).toEqual([]);
  });

  test("a single job waits for its signal like a flow's step", async () => {
    const created = await http()("POST", "/v1/jobs", { name: "signal", data: { timeoutMs: 60_000 } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await waitFor(async () => (await http()("GET", `/v1/jobs/${id}`)).body.waitingFor?.reason === "signal", 20_000, "the job to wait");
    const view = (await http()("GET", `/v1/jobs/${id}`)).body;
    expect(view.status).toBe("active");
    expect(Date.parse(view.waitingFor.until)).toBeGreaterThan(Date.now() + 50_000);
    expect((await http()("POST", `/v1/jobs/${id}/signal`, { payload: [1, 2] })).status).toBe(200);
    const done = await http()("GET", `/v1/jobs/${id}?wait=10`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result).toEqual([1, 2]);
    expect(done.body.waitingFor).toBeUndefined();
  });

  test("a signal step's timeout fails it with code timed_out, and its flow fails", async () => {
    const f = await createGraph(signalGraph({ timeoutMs: 1500 }));
    const pay = await parked(f.id, "pay", "signal");
    expect(Date.parse(pay.waitingFor!.until!)).toBeGreaterThan(Date.now());
    const done = await finished(f.id);
    expect(done.status).toBe("failed");
    const step = done.jobs.find((j) => j.key === "pay")!;
    expect(step.status).toBe("failed");
    expect(step.error.code, JSON.stringify(step.error)).toBe("timed_out");
    const late = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: 1 });
    expect(late.status).toBe(409);
  });

  test("a single-use completion URL completes the step without a token, once", async () => {
    const f = await createGraph(signalGraph({ schema: { type: "object", required: ["ok"] } }));
    const pay = await parked(f.id, "pay", "signal");
    const issued = await http()("POST", `/v1/jobs/${pay.id}/completion-url`);
    expect(issued.status).toBe(200);
    const url: string = issued.body.url;
    expect(url).toContain("/callbacks/");
    // The step's schema holds for its URL too.
    const bad = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ result: { no: 1 } }) });
    expect(bad.status).toBe(400);
    const ok = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ result: { ok: true } }) });
    expect(ok.status).toBe(200);
    const done = await finished(f.id);
    expect(done.status).toBe("completed");
    expect(done.jobs.find((j) => j.key === "ship")!.result.parents).toEqual({ pay: { ok: true } });
    const twice = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ result: { ok: true } }) });
    expect(twice.status).toBeGreaterThanOrEqual(409);
  });
});

describe("approval steps", () => {
  const approvalGraph = (data: Record<string, unknown>) => [
    { key: "ok", name: "approval", data: { prompt: "Deploy v2?", ...data } },
    { key: "deploy", name: "echo", data: { step: "deploy" }, dependsOn: ["ok"] },
  ];
  let bob: string;
  let carol: string;
  let hookPath: string;
  beforeAll(async () => {
    bob = await c.newUser("bob");
    carol = await c.newUser("carol");
    hookPath = "/approvals";
    const hook = await http()("POST", "/v1/webhooks", { url: rx.url(hookPath), events: ["job.updated", "flow.failed"] });
    expect(hook.status).toBe(201);
  });

  /** The events of the owner's log about one job, and the webhook deliveries about it. */
  const eventsOf = async (flowId: string, jobRowId: string) => {
    const res = await http()("GET", `/v1/events?after=0&limit=1000&flowId=${flowId}`);
    return (res.body.items as { type: string; jobId?: string; status?: string; data?: any }[]).filter((e) => e.jobId === jobRowId);
  };
  const deliveredFor = (jobRowId: string, status: string) =>
    waitFor(() => rx.arrivals.find((a) => a.path === hookPath && a.body.type === "job.updated" && a.body.data.id === jobRowId && a.body.data.status === status), 20_000, `a webhook for ${jobRowId} ${status}`);

  test("a named approver approves: the decision (who, when, comment) is the step's result, in its event and webhook, and the flow goes on", async () => {
    const f = await createGraph(approvalGraph({ approvers: ["bob"] }));
    const step = await parked(f.id, "ok", "approval");
    // It is in bob's Approvals, not in carol's nor in its owner's (who is not named).
    const listed = await http()("GET", "/v1/approvals", undefined, { token: bob });
    expect(listed.status).toBe(200);
    expect(listed.body.items.find((a: { id: string }) => a.id === step.id)).toMatchObject({ flowId: f.id, key: "ok", owner: "alice", prompt: "Deploy v2?", approvers: ["bob"] });
    for (const token of [carol, c.token])
      expect((await http()("GET", "/v1/approvals", undefined, { token })).body.items.some((a: { id: string }) => a.id === step.id)).toBe(false);
    // carol is no approver and not the owner: as for any other user's job, 404. alice owns it but is not named: 403.
    const byCarol = await http()("POST", `/v1/jobs/${step.id}/approve`, {}, { token: carol });
    expect(byCarol.status).toBe(404);
    const byOwner = await http()("POST", `/v1/jobs/${step.id}/approve`, {});
    expect(byOwner.status).toBe(403);
    expect(byOwner.body.error.code).toBe("not_an_approver");
    expect((await parked(f.id, "ok", "approval")).status).toBe("active");
    const res = await http()("POST", `/v1/jobs/${step.id}/approve`, { comment: "ship it" }, { token: bob });
    expect(res.status).toBe(200);
    expect(res.body.accepted).toBe("approve");
    const twice = await http()("POST", `/v1/jobs/${step.id}/reject`, {}, { token: bob });
    expect(twice.status).toBe(409);
    const done = await finished(f.id);
    expect(done.status).toBe("completed");
    const ok = done.jobs.find((j) => j.key === "ok")!;
    expect(ok.result).toMatchObject({ approved: true, by: "bob", comment: "ship it" });
    expect(Date.parse(ok.result.at)).toBeGreaterThan(0);
    expect(done.jobs.find((j) => j.key === "deploy")!.result.parents.ok.by).toBe("bob");
    const events = await eventsOf(f.id, step.id);
    expect(events.find((e) => e.status === "completed")!.data.result).toMatchObject({ approved: true, by: "bob" });
    const hook = await deliveredFor(step.id, "completed");
    expect(hook.body.data.result).toMatchObject({ approved: true, by: "bob", comment: "ship it" });
  });

  test("a rejection fails the step with code rejected and fails the flow; the decision stays on the job and goes out as its event and webhook", async () => {
    const f = await createGraph(approvalGraph({}));
    const step = await parked(f.id, "ok", "approval");
    // No approvers named: only the owner decides (and sees it in Approvals); another user's token is 404.
    expect((await http()("GET", "/v1/approvals")).body.items.some((a: { id: string }) => a.id === step.id)).toBe(true);
    expect((await http()("GET", "/v1/approvals", undefined, { token: bob })).body.items.some((a: { id: string }) => a.id === step.id)).toBe(false);
    expect((await http()("POST", `/v1/jobs/${step.id}/reject`, {}, { token: bob })).status).toBe(404);
    const res = await http()("POST", `/v1/jobs/${step.id}/reject`, { comment: "not today" });
    expect(res.status).toBe(200);
    const done = await finished(f.id);
    expect(done.status).toBe("failed");
    const ok = done.jobs.find((j) => j.key === "ok")!;
    expect(ok.status).toBe("failed");
    expect(ok.error.code).toBe("rejected");
    expect(ok.error.message).toContain("alice");
    expect(ok.result).toMatchObject({ approved: false, by: "alice", comment: "not today" });
    expect(done.jobs.find((j) => j.key === "deploy")!.status).toBe("cancelled");
    const events = await eventsOf(f.id, step.id);
    expect(events.find((e) => e.status === "failed")!.data.result).toMatchObject({ approved: false, by: "alice" });
    const hook = await deliveredFor(step.id, "failed");
    expect((hook.body.data.error as { code: string }).code).toBe("rejected");
  });

  test("an approval's timeout fails it with code timed_out", async () => {
    const f = await createGraph(approvalGraph({ timeoutMs: 1000 }));
    await parked(f.id, "ok", "approval");
    const done = await finished(f.id);
    expect(done.jobs.find((j) => j.key === "ok")!.error.code).toBe("timed_out");
  });
});

describe("bad input", () => {
  test("a payload failing the step's schema is 400 naming the path, and the step still waits", async () => {
    const f = await createGraph(signalGraph({ schema: { type: "object", properties: { amount: { type: "number" } }, required: ["amount"] } }));
    const pay = await parked(f.id, "pay", "signal");
    const res = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: { amount: "ten" } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_payload");
    expect(res.body.error.details[0].path).toBe("/payload/amount");
    expect((await parked(f.id, "pay", "signal")).status).toBe("active");
    const byKey = await http()("POST", "/v1/signals", { payload: 1 });
    expect(byKey.status).toBe(400);
    await http()("POST", `/v1/flows/${f.id}/cancel`);
  });

  test("another user's job is 404; a job that is not waiting is 409 naming its status; a payload over the body limit is 413", async () => {
    const f = await createGraph([{ key: "e", name: "echo" }, { key: "pay", name: "signal", data: {} }]);
    const pay = await parked(f.id, "pay", "signal");
    const other = await c.newUser("eve");
    const theirs = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: 1 }, { token: other });
    expect(theirs.status).toBe(404);
    const e = (await waitFor(async () => {
      const j = (await flow(f.id)).jobs.find((x) => x.key === "e")!;
      return j.status === "completed" ? j : null;
    }))!;
    const notWaiting = await http()("POST", `/v1/jobs/${e.id}/signal`, { payload: 1 });
    expect(notWaiting.status).toBe(409);
    expect(notWaiting.body.error.message).toContain("'completed'");
    const approve = await http()("POST", `/v1/jobs/${pay.id}/approve`, {});
    expect(approve.status).toBe(409);
    expect(approve.body.error.message).toContain("waiting for signal");
    const big = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: "x".repeat(12 * 1024 * 1024) });
    expect(big.status).toBe(413);
    expect((await flow(f.id)).jobs.find((j) => j.key === "pay")!.status).toBe("active");
    const cancelled = await http()("POST", `/v1/flows/${f.id}/cancel`);
    expect(cancelled.status).toBe(200);
    const after = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: 1 });
    expect(after.status).toBe(409);
    expect(after.body.error.message).toContain("'cancelled'");
  });

  test("a key signal one waiting step's schema refuses is 400 and wakes none of them (all or none)", async () => {
    const key = `all-or-none-${Date.now()}`;
    const loose = await createGraph(signalGraph({ key }));
    const strict = await createGraph(signalGraph({ key, schema: { type: "object", required: ["amount"] } }));
    await parked(loose.id, "pay", "signal");
    const step = await parked(strict.id, "pay", "signal");
    const res = await http()("POST", "/v1/signals", { key, payload: { note: "no amount" } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_payload");
    expect(res.body.error.message).toContain(step.id);
    for (const f of [loose, strict]) expect((await parked(f.id, "pay", "signal")).status).toBe("active");
    const ok = await http()("POST", "/v1/signals", { key, payload: { amount: 3 } });
    expect(ok.status).toBe(200);
    expect(ok.body.jobs).toHaveLength(2);
    for (const f of [loose, strict]) expect((await finished(f.id)).status).toBe("completed");
  });

  test("a signal twice is 409 and the first payload stays; the same key signalled again completes nothing", async () => {
    const key = `twice-${Date.now()}`;
    const f = await createGraph(signalGraph({ key }));
    const pay = await parked(f.id, "pay", "signal");
    expect((await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: "first" })).status).toBe(200);
    // At once, before the flow goes on: the step is no longer waiting.
    const twice = await http()("POST", `/v1/jobs/${pay.id}/signal`, { payload: "second" });
    expect(twice.status).toBe(409);
    expect(["not_waiting", "already_decided"]).toContain(twice.body.error.code);
    const byKey = await http()("POST", "/v1/signals", { key, payload: "third" });
    expect(byKey.status).toBe(200);
    expect(byKey.body.jobs).toEqual([]);
    const done = await finished(f.id);
    expect(done.status).toBe("completed");
    expect(done.jobs.find((j) => j.key === "pay")!.result).toBe("first");
    expect(done.jobs.find((j) => j.key === "ship")!.result.parents).toEqual({ pay: "first" });
  });

  test("a key signal or a decision over the body limit is 413, and the steps still wait", async () => {
    const key = `big-${Date.now()}`;
    const f = await createGraph([...signalGraph({ key }), { key: "ok", name: "approval", data: { prompt: "big?" } }]);
    await parked(f.id, "pay", "signal");
    const ok = await parked(f.id, "ok", "approval");
    const huge = "x".repeat(12 * 1024 * 1024);
    const bySignal = await http()("POST", "/v1/signals", { key, payload: huge });
    expect(bySignal.status).toBe(413);
    const byDecision = await http()("POST", `/v1/jobs/${ok.id}/approve`, { comment: huge });
    expect(byDecision.status).toBe(413);
    // A comment within the body limit but over its own bound is 400 naming it.
    const long = await http()("POST", `/v1/jobs/${ok.id}/reject`, { comment: "c".repeat(2001) });
    expect(long.status).toBe(400);
    expect(JSON.stringify(long.body.error.details)).toContain("comment");
    const now = await flow(f.id);
    for (const k of ["pay", "ok"]) expect(now.jobs.find((j) => j.key === k)!.status).toBe("active");
    await http()("POST", `/v1/flows/${f.id}/cancel`);
  });

  test("durations beyond the maximum, a bad until and a bad schema are 400 naming the path; nothing is written", async () => {
    const before = await c.database.db.execute<{ n: number }>(sql`select count(*)::int as n from jobs`);
    const cases: [Record<string, unknown>, string][] = [
      [{ name: "wait", data: { for: "400d" } }, "/data/for"],
      [{ name: "wait", data: { for: "53w" } }, "/data/for"],
      [{ name: "wait", data: { for: 400 * 86_400_000 } }, "/data/for"],
      [{ name: "wait", data: { for: -1 } }, "/data/for"],
      [{ name: "wait", data: { for: "3 days" } }, "/data/for"],
      [{ name: "wait", data: { until: "tomorrow" } }, "/data/until"],
      [{ name: "wait", data: { until: new Date(Date.now() + 400 * 86_400_000).toISOString() } }, "/data/until"],
      [{ name: "signal", data: { timeoutMs: 31 * 86_400_000 } }, "/data/timeoutMs"],
      [{ name: "signal", data: { timeoutMs: 0 } }, "/data/timeoutMs"],
      [{ name: "approval", data: { prompt: "ok?", timeoutMs: 31 * 86_400_000 } }, "/data/timeoutMs"],
      [{ name: "signal", data: { schema: { type: "nope" } } }, "/data/schema"],
      [{ name: "approval", data: {} }, "/data/prompt"],
      [{ name: "approval", data: { prompt: "ok?", approvers: [] } }, "/data/approvers"],
    ];
    for (const [job, path] of cases) {
      const res = await http()("POST", "/v1/jobs", job);
      expect(res.status, JSON.stringify(job)).toBe(400);
      expect(res.body.error.details[0].path, JSON.stringify(res.body)).toBe(path);
    }
    const after = await c.database.db.execute<{ n: number }>(sql`select count(*)::int as n from jobs`);
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  test("a flow with a wait step beyond the maximum is 400 naming the step's path; no flow is written", async () => {
    const count = async () => (await c.database.db.execute<{ n: number }>(sql`select count(*)::int as n from flows`))[0]!.n;
    const before = await count();
    const res = await http()("POST", "/v1/flows", {
      name: "too-long",
      jobs: [
        { key: "a", name: "echo" },
        { key: "nap", name: "wait", data: { for: "60w" }, dependsOn: ["a"] },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("/jobs/1/data/for");
    expect(res.body.error.message).toContain("at most 365 days");
    const far = await http()("POST", "/v1/flows", {
      name: "too-far",
      jobs: [{ key: "nap", name: "wait", data: { until: new Date(Date.now() + 2 * 365 * 86_400_000).toISOString() } }],
    });
    expect(far.status).toBe(400);
    expect(far.body.error.details[0].path).toBe("/jobs/0/data/until");
    expect(await count()).toBe(before);
  });
});

describe("metrics", () => {
  /** flowd_waiting_steps by reason, read from the API's /metrics. */
  const waiting = async () => {
    const text = await fetch(`${c.apis[0]!.url}/metrics`).then((r) => r.text());
    const of = (reason: string) => Number(new RegExp(`flowd_waiting_steps\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? NaN);
    return { sleep: of("sleep"), signal: of("signal"), approval: of("approval") };
  };

  test("/metrics counts parked sleeps, signals and approvals by reason, and no longer once they end", async () => {
    const base = await waiting();
    for (const v of Object.values(base)) expect(Number.isFinite(v)).toBe(true);
    const created = await http()("POST", "/v1/jobs/bulk", {
      jobs: [
        { name: "wait", data: { for: "1h" } },
        { name: "signal", data: {} },
        { name: "signal", data: {} },
        { name: "approval", data: { prompt: "counted?" } },
      ],
    });
    expect(created.status).toBe(201);
    const ids = (created.body.items as { id: string }[]).map((j) => j.id);
    await waitFor(async () => {
      const now = await waiting();
      return now.sleep === base.sleep + 1 && now.signal === base.signal + 2 && now.approval === base.approval + 1;
    }, 20_000, "the four steps in /metrics");
    // One signal ends by its payload, the rest by cancels: each stops counting.
    expect((await http()("POST", `/v1/jobs/${ids[1]}/signal`, { payload: 1 })).status).toBe(200);
    for (const id of [ids[0], ids[2], ids[3]]) expect((await http()("POST", `/v1/jobs/${id}/cancel`)).status).toBe(200);
    await waitFor(async () => {
      const now = await waiting();
      return now.sleep === base.sleep && now.signal === base.signal && now.approval === base.approval;
    }, 20_000, "the counts back where they were");
  });
});
