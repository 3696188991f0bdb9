import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startCluster, type Cluster } from "../helpers/cluster";
import { deletePrefix } from "../helpers/redis";
import { waitFor } from "../helpers/wait";

/**
 * Durable sleep (`wait`) with the API and workers as separate processes (the compiled binary under
 * FLOWD_BIN): sleeping steps hold no worker slot, so 100 of them on a worker of concurrency 2 all
 * wake within 1 s of their time; a sleep spanning a kill -9 of every worker and a restart of the API
 * completes on time; a cancel ends a sleep at once; /metrics counts the sleepers.
 */
let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ tag: "sleep", env: { WORKER_CONCURRENCY: "2", FLOWD_RECONCILE_INTERVAL_MS: "1000" } });
}, 120_000);
afterAll(async () => {
  await c?.stop();
}, 60_000);

const http = () => c.apis[0]!.http;

/** Each job's wake time (its wait's deadline) and when it finished, from Postgres. */
const lateness = (ids: string[]) =>
  c.database.db.execute<{ id: string; status: string; deadline: Date; finished_at: Date | null; late_ms: number | null }>(sql`
    select j.id, j.status, w.deadline, j.finished_at, extract(epoch from j.finished_at - w.deadline) * 1000 as late_ms
    from jobs j join task_callbacks w on w.job_id = j.job_id and w.kind = 'sleep'
    where j.id in ${sql.raw(`(${ids.map((i) => `'${i}'`).join(",")})`)}`);

const allFinished = (ids: string[], ms: number) =>
  waitFor(async () => {
    const rows = await c.database.db.execute<{ n: number }>(
      sql`select count(*)::int as n from jobs where status in ('completed', 'failed', 'cancelled') and id in ${sql.raw(`(${ids.map((i) => `'${i}'`).join(",")})`)}`,
    );
    return rows[0]!.n === ids.length;
  }, ms, `${ids.length} jobs to finish`, 100);

describe("durable sleep", () => {
  test("100 sleeping steps on a worker of concurrency 2 all wake within 1 s of their time", async () => {
    const N = 100;
    const until = new Date(Date.now() + 8_000).toISOString();
    // Half sleep `for` a duration, half `until` one moment (all waking at once is the hard case).
    const jobs = Array.from({ length: N }, (_, i) => ({ name: "wait", data: i % 2 === 0 ? { until } : { for: "5s" } }));
    const res = await http()("POST", "/v1/jobs/bulk", { jobs });
    expect(res.status).toBe(201);
    const ids = (res.body.items as { id: string }[]).map((j) => j.id);
    // All parked at once: with a slot each, two at a time would take minutes.
    await waitFor(async () => {
      const metrics = await fetch(`${c.apis[0]!.url}/metrics`).then((r) => r.text());
      const sleeping = /flowd_waiting_steps\{reason="sleep"\} (\d+)/.exec(metrics);
      return Number(sleeping?.[1] ?? 0) === N;
    }, 15_000, "100 sleepers in /metrics");
    const one = await http()("GET", `/v1/jobs/${ids[0]}`);
    expect(one.body.status).toBe("active");
    expect(one.body.waitingFor).toEqual({ reason: "sleep", until });
    await allFinished(ids, 30_000);
    const rows = await lateness(ids);
    expect(rows).toHaveLength(N);
    const late = rows.map((r) => Number(r.late_ms));
    console.log(`100 sleepers at concurrency 2: late by min ${Math.min(...late).toFixed(0)} ms, max ${Math.max(...late).toFixed(0)} ms`);
    for (const r of rows) {
      expect(r.status).toBe("completed");
      expect(Number(r.late_ms)).toBeGreaterThanOrEqual(0);
      expect(Number(r.late_ms)).toBeLessThan(1_000);
    }
  }, 90_000);

  test("an `until` in the past runs at once", async () => {
    const res = await http()("POST", "/v1/jobs", { name: "wait", data: { until: "2020-01-01T00:00:00Z" } });
    expect(res.status).toBe(201);
    const done = await http()("GET", `/v1/jobs/${res.body.id}?wait=10`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result).toEqual({ waitedUntil: "2020-01-01T00:00:00.000Z" });
  });

  test("the sleep handler parks from a minute on: no slot held, the same wait as a `wait` step", async () => {
    const res = await http()("POST", "/v1/jobs", { name: "sleep", data: { ms: 120_000 } });
    const view = await waitFor(async () => {
      const v = (await http()("GET", `/v1/jobs/${res.body.id}`)).body;
      return v.waitingFor?.reason === "sleep" ? v : null;
    }, 15_000, "the sleep to park");
    expect(Date.parse(view.waitingFor.until) - Date.now()).toBeGreaterThan(100_000);
    const [w] = await c.database.db.execute<{ terms: { result: unknown } }>(sql`select terms from task_callbacks where job_id = ${res.body.id}`);
    expect(w!.terms.result).toEqual({ slept: 120_000 });
    expect((await http()("POST", `/v1/jobs/${res.body.id}/cancel`)).body.status).toBe("cancelled");
  });

  test("a cancel ends a sleep at once", async () => {
    const res = await http()("POST", "/v1/jobs", { name: "wait", data: { for: "1h" } });
    await waitFor(async () => (await http()("GET", `/v1/jobs/${res.body.id}`)).body.waitingFor?.reason === "sleep", 15_000, "the sleep to park");
    const cancelled = await http()("POST", `/v1/jobs/${res.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    expect(cancelled.body.waitingFor).toBeUndefined();
  });

  test("a sleep spanning a kill -9 of every worker and a restart of the API completes on time", async () => {
    const res = await http()("POST", "/v1/jobs", { name: "wait", data: { for: "6s" } });
    const id = res.body.id as string;
    await waitFor(async () => (await http()("GET", `/v1/jobs/${id}`)).body.waitingFor?.reason === "sleep", 15_000, "the sleep to park");
    for (const w of c.workers.splice(0)) await w.stop("SIGKILL");
    const api = c.apis.splice(0)[0]!;
    await api.proc.stop("SIGKILL");
    await c.startApi();
    await c.startWorker();
    await allFinished([id], 20_000);
    const [row] = await lateness([id]);
    console.log(`sleep across kill -9: late by ${Number(row!.late_ms).toFixed(0)} ms`);
    expect(row!.status).toBe("completed");
    expect(Number(row!.late_ms)).toBeGreaterThanOrEqual(0);
    expect(Number(row!.late_ms)).toBeLessThan(1_000);
  }, 60_000);

  test("Redis losing every key: a sleep still wakes on time and a signal still completes its step (the reconciler re-adds both parked)", async () => {
    const sleeper = await http()("POST", "/v1/jobs", { name: "wait", data: { for: "6s" } });
    const waiter = await http()("POST", "/v1/jobs", { name: "signal", data: {} });
    for (const id of [sleeper.body.id, waiter.body.id])
      await waitFor(async () => (await http()("GET", `/v1/jobs/${id}`)).body.waitingFor !== undefined, 15_000, `${id} to park`);
    await deletePrefix(c.prefix);
    // Re-added by the reconciler, each wakes, finds its wait and parks again.
    await waitFor(async () => {
      const rows = await c.database.db.execute<{ n: number }>(
        sql`select count(*)::int as n from task_callbacks where job_id in (${sleeper.body.id}, ${waiter.body.id}) and resolution is null`,
      );
      const views = await Promise.all([sleeper.body.id, waiter.body.id].map(async (id) => (await http()("GET", `/v1/jobs/${id}`)).body.status));
      return rows[0]!.n === 2 && views.every((s) => s === "active");
    }, 10_000, "both still waiting");
    await Bun.sleep(2_500); // past a reconcile pass or two: the signal must find the job re-added or re-add it
    const signalled = await http()("POST", `/v1/jobs/${waiter.body.id}/signal`, { payload: "after the loss" });
    expect(signalled.status).toBe(200);
    await allFinished([sleeper.body.id, waiter.body.id], 20_000);
    const [row] = await lateness([sleeper.body.id]);
    console.log(`sleep across a Redis loss: late by ${Number(row!.late_ms).toFixed(0)} ms`);
    expect(row!.status).toBe("completed");
    expect(Number(row!.late_ms)).toBeLessThan(1_000);
    const signalView = (await http()("GET", `/v1/jobs/${waiter.body.id}`)).body;
    expect(signalView.status).toBe("completed");
    expect(signalView.result).toBe("after the loss");
  }, 60_000);
});
