import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FLOW_STATUSES, JOB_STATUSES } from "../../src/statuses";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// GET /v1/stats: counts by status now and finished jobs per minute, from Postgres, per user.
let stack: Stack;
let bob: string;
let carol: string;
/** The minute the rows were written in, as the API names minutes. */
let minuteNow: number;

beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "stats" });
  bob = await stack.newUser("bob");
  carol = await stack.newUser("carol");
  const sql = stack.database.sql;
  const [now] = await sql<{ m: string }[]>`select date_trunc('minute', now()) as m`;
  minuteNow = new Date(now!.m).getTime();
  const alice = (await sql<{ id: string }[]>`select id from users where name = 'alice'`)[0]!.id;
  // Rows written directly, so the minutes they finished in are known exactly.
  await sql`insert into jobs (id, job_id, user_id, name, queue_name, data, opts, status, created_at, updated_at)
    select 'sj' || i, 'sjj' || i, ${alice}, 'echo', 'jobs', '{}', '{}',
      case when i <= 3 then 'completed' when i <= 5 then 'failed' else 'waiting' end,
      now() - interval '3 hours', date_trunc('minute', now()) - case when i <= 4 then interval '2 minutes' else interval '90 minutes' end
    from generate_series(1, 8) i`;
  await sql`insert into flows (id, user_id, name, status, root_id, job_count) values ('sf1', ${alice}, 'f', 'running', 'sr1', 2), ('sf2', ${alice}, 'g', 'failed', 'sr2', 1)`;
  await sql`insert into flow_jobs (id, job_id, user_id, flow_id, name, queue_name, data, opts, status, updated_at) values
    ('sr1', 'srj1', ${alice}, 'sf1', 'echo', 'flows', '{}', '{}', 'waiting-children', now()),
    ('sc1', 'scj1', ${alice}, 'sf1', 'echo', 'flows', '{}', '{}', 'completed', date_trunc('minute', now())),
    ('sr2', 'srj2', ${alice}, 'sf2', 'fail', 'flows', '{}', '{}', 'failed', date_trunc('minute', now()))`;
  // Carol's timed jobs: run i * 100 ms after a wait of i * 10 ms (i = 1..10), plus two without times
  // (a job that never started, and one finished before the times were kept) that count but add no sample.
  const carolId = (await sql<{ id: string }[]>`select user_id as id from api_tokens order by created_at desc limit 1`)[0]!.id;
  await sql`insert into jobs (id, job_id, user_id, name, queue_name, data, opts, status, ready_at, started_at, finished_at, updated_at)
    select 'tj' || i, 'tjj' || i, ${carolId}, 'timed', 'jobs', '{}', '{}', case when i = 10 then 'failed' else 'completed' end,
      t - make_interval(secs => i * 0.11), t - make_interval(secs => i * 0.1), t, t
    from generate_series(1, 10) i, (select now() - interval '5 minutes' as t) n`;
  await sql`insert into flow_jobs (id, job_id, user_id, flow_id, name, queue_name, data, opts, status, updated_at) values
    ('tn1', 'tnj1', ${carolId}, 'tf', 'timed', 'flows', '{}', '{}', 'failed', now()),
    ('tn2', 'tnj2', ${carolId}, 'tf', 'untimed', 'flows', '{}', '{}', 'completed', now())`;
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("GET /v1/stats", () => {
  test("counts by status (every status present) and a minute-by-minute hour by default", async () => {
    const res = await stack.http("GET", "/v1/stats");
    expect(res.status).toBe(200);
    const s = res.body;
    expect(s.window).toBe("1h");
    expect(Object.keys(s.flows).sort()).toEqual([...FLOW_STATUSES].sort());
    expect(Object.keys(s.jobs).sort()).toEqual([...JOB_STATUSES].sort());
    expect(s.flows).toMatchObject({ running: 1, failed: 1, completed: 0, cancelled: 0 });
    expect(s.jobs).toMatchObject({ completed: 4, failed: 3, waiting: 3, "waiting-children": 1, active: 0 });
    expect(s.perMinute).toHaveLength(60);
    // Found by time, not position: the request may fall in the next minute.
    const at = (t: number) => s.perMinute.find((m: { minute: string }) => new Date(m.minute).getTime() === t);
    const last = at(minuteNow);
    const twoAgo = at(minuteNow - 120_000);
    expect(last).toMatchObject({ completed: 1, failed: 1 });
    // i = 1..3 completed, i = 4 failed two minutes ago; i = 5 failed 90 minutes ago (outside the hour).
    expect(twoAgo).toMatchObject({ completed: 3, failed: 1 });
    const total = s.perMinute.reduce((n: number, m: { completed: number; failed: number }) => n + m.completed + m.failed, 0);
    expect(total).toBe(6);
  });

  test("a longer window reaches further back; another user sees only their own", async () => {
    const day = await stack.http("GET", "/v1/stats?window=24h");
    expect(day.status).toBe(200);
    expect(day.body.perMinute).toHaveLength(1440);
    expect(day.body.perMinute.reduce((n: number, m: { failed: number }) => n + m.failed, 0)).toBe(3);
    const short = await stack.http("GET", "/v1/stats?window=5m");
    expect(short.body.perMinute).toHaveLength(5);
    const theirs = await stack.http("GET", "/v1/stats", undefined, { token: bob });
    expect(theirs.status).toBe(200);
    expect(Object.values(theirs.body.jobs).every((n) => n === 0)).toBe(true);
    expect(theirs.body.perMinute.every((m: { completed: number; failed: number }) => m.completed + m.failed === 0)).toBe(true);
  });

  test("per handler: counts and p50/p95 run time and wait of the jobs finished in the window, from Postgres", async () => {
    const res = await stack.http("GET", "/v1/stats?window=15m", undefined, { token: carol });
    expect(res.status).toBe(200);
    // percentile_cont over 100..1000 ms: p50 = 550, p95 = 955; waits 10..100 ms: 55 and 95.5.
    expect(res.body.handlers).toEqual([
      { handler: "timed", completed: 9, failed: 2, runMs: { p50: 550, p95: 955 }, waitMs: { p50: 55, p95: 95.5 } },
      { handler: "untimed", completed: 1, failed: 0, runMs: { p50: null, p95: null }, waitMs: { p50: null, p95: null } },
    ]);
    // Jobs that finished before the window are not counted.
    expect((await stack.http("GET", "/v1/stats?window=1m", undefined, { token: carol })).body.handlers).toEqual([
      { handler: "timed", completed: 0, failed: 1, runMs: { p50: null, p95: null }, waitMs: { p50: null, p95: null } },
      expect.objectContaining({ handler: "untimed" }),
    ]);
    expect((await stack.http("GET", "/v1/stats", undefined, { token: bob })).body.handlers).toEqual([]);
  });

  test("the recorder keeps each run's times: a parent's wait starts when its children are done, not at its creation", async () => {
    const dave = await stack.newUser("dave");
    await stack.startWorker();
    const created = await stack.http(
      "POST",
      "/v1/flows",
      { name: "timed", root: { name: "echo", children: [{ name: "sleep", data: { ms: 1500 } }, { name: "sleep", data: { ms: 1500 } }] } },
      { token: dave },
    );
    expect(created.status).toBe(201);
    const single = await stack.http("POST", "/v1/jobs", { name: "fail", data: { message: "no" } }, { token: dave });
    expect(single.status).toBe(201);
    const stats = await waitFor(
      async () => {
        const body = (await stack.http("GET", "/v1/stats?window=5m", undefined, { token: dave })).body;
        const done = body.handlers.reduce((n: number, h: { completed: number; failed: number }) => n + h.completed + h.failed, 0);
        return done === 4 ? body : null;
      },
      30_000,
      "four finished jobs in dave's stats",
    );
    const by = Object.fromEntries(stats.handlers.map((h: { handler: string }) => [h.handler, h]));
    expect(Object.keys(by)).toEqual(["echo", "fail", "sleep"]);
    expect(by.sleep.completed).toBe(2);
    // Stream entry times (Redis's clock): a 1,500 ms sleep runs at least that long.
    expect(by.sleep.runMs.p50).toBeGreaterThanOrEqual(1490);
    expect(by.sleep.runMs.p95).toBeLessThan(10_000);
    expect(by.sleep.waitMs.p50).toBeGreaterThanOrEqual(0);
    expect(by.fail).toMatchObject({ completed: 0, failed: 1 });
    expect(by.fail.runMs.p50).not.toBeNull();
    // The parent waited for its children for 1.5 s, but its own wait is from their end to its start.
    expect(by.echo.completed).toBe(1);
    expect(by.echo.waitMs.p50).not.toBeNull();
    expect(by.echo.waitMs.p50).toBeLessThan(1000);
    expect(by.echo.runMs.p50).toBeLessThan(1000);
  }, 60_000);

  test.each(["0m", "25h", "1441m", "99999h", "1d", "-1h", "1.5h", "h", "abc"])("window=%s is 400 invalid_input", async (w) => {
    const res = await stack.http("GET", `/v1/stats?window=${encodeURIComponent(w)}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_input");
    expect(typeof res.body.error.message).toBe("string");
  });

  test("needs a token", async () => {
    const res = await stack.http("GET", "/v1/stats", undefined, { token: null });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
  });

  test("is in the OpenAPI document, as are the new list filters", async () => {
    const doc = (await stack.http("GET", "/docs/json")).body;
    expect(doc.paths["/v1/stats"].get.parameters.map((p: { name: string }) => p.name)).toEqual(["window"]);
    const ok = JSON.stringify(doc.paths["/v1/stats"].get.responses["200"]);
    for (const field of ["handlers", "runMs", "waitMs", "p95"]) expect(ok).toContain(`"${field}"`);
    for (const path of ["/v1/flows", "/v1/jobs"]) {
      const names = doc.paths[path].get.parameters.map((p: { name: string }) => p.name);
      expect(names).toEqual(expect.arrayContaining(["name", "data"]));
    }
  });
});
