import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { countKeys } from "../helpers/redis";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * `opts.debounce` with a real API, worker process, Postgres and Redis: creates with one key within
 * the window collapse into one run with the newest data, also when they arrive at once; and the
 * bad option values of timeouts, expiry and debounce are refused, nothing written.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ tag: "debounce" });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

const job = async (id: string) => (await stack.http("GET", `/v1/jobs/${id}`)).body;
const finished = (id: string, ms = 20_000) =>
  waitFor(async () => {
    const j = await job(id);
    return ["completed", "failed", "cancelled"].includes(j.status) && j;
  }, ms, `job ${id} finished`);
const rowsWithKey = async (key: string) =>
  (await stack.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where debounce_key = ${key}`)[0]!.n;

describe("opts.debounce", () => {
  test("50 creates in a second run once, with the last data; 49 collapsed", async () => {
    // Sent 18 ms apart (all within 0.9 s, whatever the machine's load), each without waiting for
    // the one before: the last one Postgres applied is the reply that counts 49 collapsed.
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, n) =>
        Bun.sleep(n * 18).then(() => stack.http("POST", "/v1/jobs", { name: "echo", data: { n }, opts: { debounce: { key: "burst", ms: 1_000 } } })),
      ),
    );
    const opened = replies.filter((r) => r.status === 201);
    expect(opened).toHaveLength(1);
    const first = opened[0]!;
    expect(first.body.debounced).toBe(false);
    expect(first.body.status).toBe("pending");
    expect(first.body.waitingFor).toMatchObject({ reason: "debounce", key: "burst" });
    const joined = replies.filter((r) => r !== first);
    for (const r of joined) {
      expect(r.status).toBe(200);
      expect(r.body.debounced).toBe(true);
      expect(r.body.id).toBe(first.body.id);
    }
    const last = replies.find((r) => r.body.debounce.collapsed === 49)!;
    expect(last.body.debounce).toMatchObject({ key: "burst", collapsed: 49 });

    const done = await finished(first.body.id);
    expect(done.status).toBe("completed");
    expect(done.result.data).toEqual(last.body.data);
    expect(done.attemptsMade).toBe(1);
    expect(done.debounce).toMatchObject({ key: "burst", collapsed: 49 });
    expect(done.waitingFor).toBeUndefined();
    expect(await rowsWithKey("burst")).toBe(1);

    // The window is over: the next create with the key opens a new one, a second run.
    const next = await stack.http("POST", "/v1/jobs", { name: "echo", data: { n: 50 }, opts: { debounce: { key: "burst", ms: 50 } } });
    expect(next.status).toBe(201);
    expect(next.body.id).not.toBe(first.body.id);
    expect((await finished(next.body.id)).result.data).toEqual({ n: 50 });
  }, 30_000);

  test("20 creates at once collapse into one job (one row per user and key)", async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, n) => stack.http("POST", "/v1/jobs", { name: "echo", data: { n }, opts: { debounce: { key: "at-once", ms: 300 } } })),
    );
    const ids = new Set(replies.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
    expect(replies.filter((r) => r.body.debounced === true)).toHaveLength(19);
    const done = await finished([...ids][0]!);
    expect(done.status).toBe("completed");
    expect(done.debounce.collapsed).toBe(19);
    expect(await rowsWithKey("at-once")).toBe(1);
  }, 30_000);

  test("keys are per user: another user's create with the same key is a job of its own", async () => {
    const other = await stack.newUser("bob");
    const mine = await stack.http("POST", "/v1/jobs", { name: "echo", data: { me: 1 }, opts: { debounce: { key: "shared", ms: 200 } } });
    const theirs = await stack.http("POST", "/v1/jobs", { name: "echo", data: { me: 2 }, opts: { debounce: { key: "shared", ms: 200 } } }, { token: other });
    expect(mine.status).toBe(201);
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect((await finished(mine.body.id)).result.data).toEqual({ me: 1 });
  }, 30_000);

  test("the window lives in Postgres: with the worker killed (-9) mid-window, a new worker runs the job once, with the last data", async () => {
    const first = await stack.http("POST", "/v1/jobs", { name: "echo", data: { v: 1 }, opts: { debounce: { key: "crash", ms: 300 } } });
    const [worker] = stack.workers.splice(0, 1);
    await worker!.stop("SIGKILL");
    const last = await stack.http("POST", "/v1/jobs", { name: "echo", data: { v: 2 }, opts: { debounce: { key: "crash", ms: 300 } } });
    expect(last.body.id).toBe(first.body.id);
    await waitFor(
      async () => (await stack.database.sql<{ over: boolean }[]>`select debounce_until < now() as over from jobs where id = ${first.body.id}`)[0]!.over,
      5_000,
      "the window over",
    );
    expect((await job(first.body.id)).status).toBe("pending");
    await stack.startWorker();
    const done = await finished(first.body.id);
    expect(done.status).toBe("completed");
    expect(done.result.data).toEqual({ v: 2 });
    expect(done.debounce.collapsed).toBe(1);
    expect(await rowsWithKey("crash")).toBe(1);
  }, 60_000);

  test("a cancelled debounced job never runs, and the key opens a new window", async () => {
    const held = await stack.http("POST", "/v1/jobs", { name: "echo", data: { v: 1 }, opts: { debounce: { key: "cancel-me", ms: 60_000 } } });
    const cancelled = await stack.http("POST", `/v1/jobs/${held.body.id}/cancel`);
    expect(cancelled.body.status).toBe("cancelled");
    const next = await stack.http("POST", "/v1/jobs", { name: "echo", data: { v: 2 }, opts: { debounce: { key: "cancel-me", ms: 50 } } });
    expect(next.status).toBe(201);
    expect(next.body.id).not.toBe(held.body.id);
    expect((await finished(next.body.id)).status).toBe("completed");
    expect((await job(held.body.id)).status).toBe("cancelled");
  }, 30_000);
});

describe("bad timeouts, expiry and debounce options are refused, nothing written", () => {
  const HOUR = 3_600_000;
  const cases: [string, string, unknown, string][] = [
    ["timeoutMs 0", "/v1/jobs", { name: "echo", opts: { timeoutMs: 0 } }, "/opts/timeoutMs"],
    ["timeoutMs negative", "/v1/jobs", { name: "echo", opts: { timeoutMs: -5 } }, "/opts/timeoutMs"],
    ["timeoutMs over 24 h", "/v1/jobs", { name: "echo", opts: { timeoutMs: 24 * HOUR + 1 } }, "/opts/timeoutMs"],
    ["timeoutMs not an integer", "/v1/jobs", { name: "echo", opts: { timeoutMs: 1.5 } }, "/opts/timeoutMs"],
    ["expireAfterMs 0", "/v1/jobs", { name: "echo", opts: { expireAfterMs: 0 } }, "/opts/expireAfterMs"],
    ["expireAfterMs over 7 days", "/v1/jobs", { name: "echo", opts: { expireAfterMs: 7 * 24 * HOUR + 1 } }, "/opts/expireAfterMs"],
    ["debounce key empty", "/v1/jobs", { name: "echo", opts: { debounce: { key: "", ms: 100 } } }, "/opts/debounce/key"],
    ["debounce key 129 chars", "/v1/jobs", { name: "echo", opts: { debounce: { key: "k".repeat(129), ms: 100 } } }, "/opts/debounce/key"],
    ["debounce ms 0", "/v1/jobs", { name: "echo", opts: { debounce: { key: "k", ms: 0 } } }, "/opts/debounce/ms"],
    ["debounce ms over 1 h", "/v1/jobs", { name: "echo", opts: { debounce: { key: "k", ms: HOUR + 1 } } }, "/opts/debounce/ms"],
    ["debounce without ms", "/v1/jobs", { name: "echo", opts: { debounce: { key: "k" } } }, "/opts/debounce/ms"],
    ["debounce on a flow job", "/v1/flows", { name: "f", root: { name: "echo", opts: { debounce: { key: "k", ms: 100 } } } }, "/root/opts/debounce"],
    ["debounce on a graph job", "/v1/flows", { name: "g", jobs: [{ key: "a", name: "echo", opts: { debounce: { key: "k", ms: 100 } } }] }, "/jobs/0/opts/debounce"],
    ["timeoutMs over 24 h on a flow job", "/v1/flows", { name: "f", root: { name: "echo", children: [{ name: "echo", opts: { timeoutMs: 24 * HOUR + 1 } }] } }, "/root/children/0/opts/timeoutMs"],
    ["debounce in a bulk", "/v1/jobs/bulk", { jobs: [{ name: "echo" }, { name: "echo", opts: { debounce: { key: "k", ms: 100 } } }] }, "/jobs/1/opts/debounce"],
    ["debounce on a schedule's job", "/v1/schedules", { name: "s", every: 60_000, job: { name: "echo", opts: { debounce: { key: "k", ms: 100 } } } }, "/job/opts/debounce"],
  ];

  test.each(cases)("%s", async (_what, path, body, at) => {
    const count = async () =>
      (await stack.database.sql<{ n: number }[]>`select (select count(*) from jobs) + (select count(*) from flows) + (select count(*) from schedules) as n`)[0]!.n;
    const before = { rows: await count(), keys: await countKeys(stack.config.prefix) };
    const res = await stack.http("POST", path, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toMatch(/^invalid_/);
    const paths = (res.body.error.details as { path: string }[]).map((d) => d.path);
    expect(paths.some((p) => p === at || p.startsWith(at))).toBe(true);
    if (at.endsWith("/opts/debounce") && at !== "/opts/debounce") expect(res.body.error.message).toContain("POST /v1/jobs");
    expect({ rows: await count(), keys: await countKeys(stack.config.prefix) }).toEqual(before);
  });
});
