import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Queue } from "bullmq";
import IORedis from "ioredis";
import type { Server } from "bun";
import { startCluster, type ApiProcess, type Cluster } from "../helpers/cluster";
import type { HttpReply } from "../helpers/http";
import { deletePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";

// Schedules through real processes: the API process registers BullMQ job schedulers, worker
// processes turn each tick into a tracked job in `jobs`.
let cluster: Cluster;
let api: ApiProcess;
let cluster2: Cluster | undefined;
let receiver: Server<undefined> | undefined;
const redisConnections: IORedis[] = [];
const queues: Queue[] = [];

const openQueue = (name: string, prefix: string) => {
  const connection = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  redisConnections.push(connection);
  const q = new Queue(name, { connection, prefix });
  queues.push(q);
  return q;
};

let schedulesQueue: Queue;

beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 1, tag: "sched" });
  api = cluster.apis[0]!;
  schedulesQueue = openQueue("schedules", cluster.prefix);
}, 60_000);

afterAll(async () => {
  receiver?.stop(true);
  await Promise.allSettled(queues.map((q) => q.close()));
  for (const r of redisConnections) r.disconnect();
  await Promise.allSettled([cluster?.stop(), cluster2?.stop()]);
});

const expectStatus = (res: HttpReply, status: number) => {
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(res.body).slice(0, 500)}`);
};

const createSchedule = async (body: unknown, on: ApiProcess = api, token?: string) => {
  const res = await on.http("POST", "/v1/schedules", body, { token });
  expectStatus(res, 201);
  return res.body as { id: string; nextRunAt: string | null; lastRunAt: string | null };
};

const countFor = async (c: Cluster, scheduleId: string) => {
  const [row] = await c.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where schedule_id = ${scheduleId}`;
  return row?.n ?? -1;
};

const listFor = async (scheduleId: string, status?: string) => {
  const res = await api.http("GET", `/v1/jobs?scheduleId=${scheduleId}&limit=100${status ? `&status=${status}` : ""}`);
  expectStatus(res, 200);
  return res.body.items as { id: string; status: string; scheduleId: string; name: string; data: unknown; result: unknown }[];
};

describe("schedules", () => {
  test("an every-1000 ms schedule creates jobs that complete; delete stops it and keeps its jobs", async () => {
    const created = await createSchedule({ name: "tick", every: 1000, job: { name: "echo", data: { s: 1 } } });
    expect(created.id).toMatch(/^c[0-9a-z]{24}$/);
    expect(created.nextRunAt).not.toBeNull();
    expect(Number.isNaN(Date.parse(created.nextRunAt!))).toBe(false);
    expect(created.lastRunAt).toBeNull();
    const id = created.id;

    const done = await waitFor(
      async () => {
        const items = await listFor(id, "completed");
        return items.length >= 3 ? items : null;
      },
      10_000,
      "three completed ticks",
      100,
    );
    for (const job of done) {
      expect(job.scheduleId).toBe(id);
      expect(job.name).toBe("echo");
      expect(job.data).toEqual({ s: 1 });
      expect(job.result).toEqual({ data: { s: 1 }, children: {} });
    }
    const all = await listFor(id);
    expect(new Set(all.map((j) => j.id)).size).toBe(all.length);

    // The view shows the last run and, once Redis has planned it, a next run in the future.
    const view = await waitFor(
      async () => {
        const res = await api.http("GET", `/v1/schedules/${id}`);
        expectStatus(res, 200);
        return res.body.lastRunAt && res.body.nextRunAt && Date.parse(res.body.nextRunAt) > Date.now() ? res.body : null;
      },
      5_000,
      "a schedule view with lastRunAt and a future nextRunAt",
      50,
    );
    expect(view.every).toBe(1000);
    expect(view.pattern).toBeNull();
    expect(view.job).toEqual({ name: "echo", data: { s: 1 }, opts: {} });
    expect(Date.parse(view.lastRunAt)).toBeLessThanOrEqual(Date.now());

    const del = await api.http("DELETE", `/v1/schedules/${id}`);
    expectStatus(del, 204);
    const count = await countFor(cluster, id);
    // The one bounded wait: for 3 s no new tick may appear (one already in flight is allowed).
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      expect(await countFor(cluster, id)).toBeLessThanOrEqual(count + 1);
      await Bun.sleep(250);
    }
    const gone = await api.http("GET", `/v1/schedules/${id}`);
    expectStatus(gone, 404);
    expect(gone.body.error.code).toBe("not_found");
    expect(await schedulesQueue.getJobScheduler(id)).toBeFalsy();
    const kept = await listFor(id);
    expect(kept.length).toBeGreaterThanOrEqual(count);
    for (const j of done) expect(kept.map((k) => k.id)).toContain(j.id);
    const again = await api.http("DELETE", `/v1/schedules/${id}`);
    expectStatus(again, 404);
  });

  test("a 6-field cron pattern with a time zone ticks every second", async () => {
    const created = await createSchedule({
      name: "cron",
      pattern: "*/1 * * * * *",
      tz: "Europe/Paris",
      job: { name: "echo", data: { cron: true } },
    });
    expect(created.nextRunAt).not.toBeNull();
    const view = await api.http("GET", `/v1/schedules/${created.id}`);
    expectStatus(view, 200);
    expect(view.body.pattern).toBe("*/1 * * * * *");
    expect(view.body.tz).toBe("Europe/Paris");
    await waitFor(async () => (await listFor(created.id, "completed")).length >= 2, 6_000, "two cron ticks", 100);
    expectStatus(await api.http("DELETE", `/v1/schedules/${created.id}`), 204);
  });

  test("bad input is refused with a code and stores nothing", async () => {
    const snapshot = async () => {
      const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from schedules`;
      return { rows: row?.n ?? -1, schedulers: await schedulesQueue.getJobSchedulersCount() };
    };
    const job = { name: "echo" };
    const cases: { body: unknown; status: number; code: string }[] = [
      { body: { name: "x", pattern: "not a cron", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", pattern: "* * *", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", pattern: "0 0 * * * * 2030", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", pattern: "61 * * * *", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", pattern: "* * * * *", tz: "Mars/Olympus", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", pattern: "* * * * *", every: 1000, job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", every: 1000, tz: "UTC", job }, status: 400, code: "invalid_schedule" },
      { body: { name: "x", every: 50, job }, status: 400, code: "invalid_input" },
      { body: { name: "x", every: 1000, job: { name: "nope" } }, status: 400, code: "unknown_handler" },
      { body: { name: "x", every: 1000, job: { name: "sleep", data: {} } }, status: 400, code: "invalid_job_data" },
      { body: { name: "x", every: 1000 }, status: 400, code: "invalid_input" },
      { body: { name: "x", every: 1000, job, extra: true }, status: 400, code: "invalid_input" },
      { body: { name: "x", every: 1000, job: { name: "echo", data: { big: "x".repeat(2 * 1024 * 1024) } } }, status: 413, code: "payload_too_large" },
    ];
    for (const c of cases) {
      const before = await snapshot();
      const res = await api.http("POST", "/v1/schedules", c.body);
      if (res.status !== c.status || res.body?.error?.code !== c.code)
        throw new Error(`${JSON.stringify(c.body).slice(0, 120)}: expected ${c.status} ${c.code}, got ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
      expect(typeof res.body.error.message).toBe("string");
      expect(await snapshot()).toEqual(before);
    }
  });

  test("every = one year (the documented maximum) is kept exactly and runs a year on; a year and 1 ms is refused", async () => {
    const year = 366 * 24 * 3600 * 1000; // 31,622,400,000 ms: past a 32-bit integer
    const before = Date.now();
    const created = await createSchedule({ name: "yearly", every: year, job: { name: "echo" } });
    const read = await api.http("GET", `/v1/schedules/${created.id}`);
    expectStatus(read, 200);
    expect(read.body.every).toBe(year);
    for (const next of [created.nextRunAt, read.body.nextRunAt]) {
      // BullMQ's every-scheduler starts on the next multiple of `every` after now (epoch-aligned).
      const at = Date.parse(next!);
      expect(at).toBeGreaterThan(before);
      expect(at).toBeLessThanOrEqual(Date.now() + year);
    }
    const [row] = await cluster.database.sql<{ every: string }[]>`select every::text from schedules where id = ${created.id}`;
    expect(row!.every).toBe(String(year));
    expect((await api.http("GET", "/v1/schedules")).body.items.find((s: { id: string }) => s.id === created.id)?.every).toBe(year);

    const [counted] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from schedules`;
    const over = await api.http("POST", "/v1/schedules", { name: "too-long", every: year + 1, job: { name: "echo" } });
    expectStatus(over, 400);
    expect(over.body.error.code).toBe("invalid_input");
    expect(over.body.error.message).toContain("/every");
    expect(over.body.error.message).toContain(String(year));
    const [after] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from schedules`;
    expect(after!.n).toBe(counted!.n);
    expectStatus(await api.http("DELETE", `/v1/schedules/${created.id}`), 204);
  });

  test("another user's schedule answers 404 and is not listed", async () => {
    const mine = await createSchedule({ name: "private", every: 3_600_000, job: { name: "echo" } });
    const mallory = await cluster.newUser("mallory-sched");
    const get = await api.http("GET", `/v1/schedules/${mine.id}`, undefined, { token: mallory });
    expectStatus(get, 404);
    expect(get.body.error.code).toBe("not_found");
    const del = await api.http("DELETE", `/v1/schedules/${mine.id}`, undefined, { token: mallory });
    expectStatus(del, 404);
    expect(del.body.error.code).toBe("not_found");
    const list = await api.http("GET", "/v1/schedules", undefined, { token: mallory });
    expectStatus(list, 200);
    expect(list.body.items).toEqual([]);
    // Still there for its owner, in Postgres and in Redis.
    const own = await api.http("GET", "/v1/schedules");
    expect(own.body.items.map((s: { id: string }) => s.id)).toContain(mine.id);
    expectStatus(await api.http("GET", `/v1/schedules/${mine.id}`), 200);
    expect(await schedulesQueue.getJobScheduler(mine.id)).toBeTruthy();
    expectStatus(await api.http("DELETE", `/v1/schedules/${mine.id}`), 204);
  });

  test("after the deployment's Redis keys are deleted and the worker restarts, the schedule ticks again", async () => {
    const created = await createSchedule({ name: "survivor", every: 1000, job: { name: "echo", data: { survive: 1 } } });
    await waitFor(async () => (await countFor(cluster, created.id)) >= 1, 10_000, "a first tick", 100);

    await deletePrefix(cluster.prefix);
    const old = cluster.workers[0]!;
    expect(await old.stop("SIGTERM")).toBe(0);
    const before = await countFor(cluster, created.id);
    const restartedAt = new Date();
    const restarted = await cluster.startWorker();

    const fresh = await waitFor(
      async () => {
        const [row] = await cluster.database.sql<{ n: number }[]>`
          select count(*)::int as n from jobs where schedule_id = ${created.id} and created_at > ${restartedAt.toISOString()}::timestamptz and status = 'completed'`;
        return (row?.n ?? 0) >= 1;
      },
      20_000,
      "a completed tick after the restart",
      200,
    );
    expect(fresh).toBe(true);
    // A schedule keeper found the scheduler missing and registered it again (the new worker's at its
    // start, or, if its 15 s check fell between the deletion and the stop, the old one's).
    const repaired = (w: { lines: string[] }) => w.lines.some((l) => l.includes("re-registered schedules missing from Redis"));
    expect(repaired(restarted) || repaired(old)).toBe(true);
    expect(await countFor(cluster, created.id)).toBeGreaterThan(before);
    expect(await schedulesQueue.getJobScheduler(created.id)).toBeTruthy();
    expectStatus(await api.http("DELETE", `/v1/schedules/${created.id}`), 204);
  });
});

describe("schedules with two workers", () => {
  test("two worker processes create each tick once and run it once", async () => {
    let requests = 0;
    receiver = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch() {
        requests++;
        return Response.json({ ok: true });
      },
    });
    const c2 = await startCluster({ apis: 1, workers: 2, tag: "sched2" });
    cluster2 = c2;
    const api2 = c2.apis[0]!;
    const jobsQueue2 = openQueue("jobs", c2.prefix);

    const started = Date.now();
    const schedule = await createSchedule(
      { name: "twice?", every: 500, job: { name: "http", data: { url: `http://127.0.0.1:${receiver.port}/hook`, method: "POST", body: { n: 1 } } } },
      api2,
      c2.token,
    );
    await waitFor(async () => (await countFor(c2, schedule.id)) >= 2, 10_000, "first ticks", 100);
    await Bun.sleep(Math.max(0, 4_000 - (Date.now() - started)));
    expectStatus(await api2.http("DELETE", `/v1/schedules/${schedule.id}`), 204);
    const elapsed = Date.now() - started;

    // Settle: the count stops moving (a tick in flight may still land) and every row finished.
    let last = -1;
    await waitFor(
      async () => {
        const [row] = await c2.database.sql<{ n: number; open: number }[]>`
          select count(*)::int as n, count(*) filter (where status <> 'completed')::int as open
          from jobs where schedule_id = ${schedule.id}`;
        const stable = row !== undefined && row.n === last && row.open === 0;
        last = row?.n ?? -1;
        return stable;
      },
      15_000,
      "every tick's job completed",
      500,
    );

    const rows = await c2.database.sql<{ id: string; status: string }[]>`select id, status from jobs where schedule_id = ${schedule.id}`;
    expect(rows.length).toBeGreaterThanOrEqual(4);
    expect(rows.length).toBeLessThanOrEqual(Math.floor(elapsed / 500) + 2);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    for (const r of rows) expect(r.status).toBe("completed");

    // One BullMQ job per row (the `jobs` queue holds only this schedule's ticks), one request per row.
    const counts = await jobsQueue2.getJobCounts("completed", "failed", "active", "waiting", "delayed", "prioritized", "waiting-children");
    const inRedis = Object.values(counts).reduce((a, b) => a + b, 0);
    expect(inRedis).toBe(rows.length);
    expect(requests).toBe(rows.length);
  }, 60_000);
});
