import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "bullmq";
import IORedis from "ioredis";
import { startCluster, type Cluster } from "../helpers/cluster";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";
import { connectWs } from "../helpers/ws-client";
import { startNodeWorker } from "../helpers/node-worker";

/**
 * Jobs added while a graph flow runs, and joins on them, with the API and a worker as separate
 * processes: a module handler fans out and joins without holding its worker slot (concurrency 1),
 * runs again after the join with every result, and a worker killed while it is parked loses nothing.
 */
let c: Cluster;
const dir = mkdtempSync(join(tmpdir(), "flowd-spawn-"));
let node: ReturnType<typeof Bun.spawn> | null = null;
let holder: Worker | null = null;

// A user's own worker (plain node, only bullmq): `split` adds four `part` jobs through the REST
// route with its lock token and joins on them; parked, it ends the run with DelayedError, and when
// it runs again the same request answers the parts' results. Concurrency 1: the parts run only
// because the parked job gave its slot back.
const WORKER = `
const { Worker, DelayedError } = require("bullmq");
const worker = new Worker("ext", async (job, token) => {
  if (job.name === "part") return { v: job.data.i * 10 };
  const keys = [0, 1, 2, 3].map((i) => "p" + i);
  const res = await fetch(process.env.API + "/v1/jobs/" + job.id + "/spawn", {
    method: "POST",
    headers: { authorization: "Bearer " + process.env.TOKEN, "content-type": "application/json" },
    body: JSON.stringify({ lockToken: token, jobs: keys.map((key, i) => ({ key, name: "part", queue: "ext", data: { i } })), waitFor: keys }),
  });
  const answer = await res.json();
  console.log(JSON.stringify({ id: job.id, status: res.status, answer }));
  if (res.status !== 200) throw new Error(JSON.stringify(answer));
  if (answer.parked) throw new DelayedError();
  return { total: Object.values(answer.results).reduce((a, r) => a + r.v, 0) };
}, { connection: { url: process.env.REDIS_URL }, prefix: process.env.PREFIX, concurrency: 1 });
worker.on("ready", () => console.log(JSON.stringify({ ready: true })));
`;

// `fan` adds n `square` jobs and joins on them; it runs again after the join (re-entry), when its
// spawn answers the jobs already added and the join their results. Each run is counted in its log.
const MODULE = `
export default {
  fan: {
    async run(ctx) {
      ctx.log("run");
      const keys = Array.from({ length: ctx.data.n }, (_, i) => "sq-" + i);
      const spawned = await ctx.spawn(keys.map((key, i) => ({ key, name: "square", data: { i, ms: ctx.data.ms ?? 0 } })));
      const results = await ctx.waitFor(keys);
      return {
        count: Object.keys(results).length,
        sum: Object.values(results).reduce((a, r) => a + r.sq, 0),
        addedThisRun: spawned.filter((s) => s.added).length,
      };
    },
  },
  badspawn: {
    async run(ctx) {
      await ctx.spawn([{ key: "z", name: "square", data: { i: 1 }, dependsOn: ["ghost"] }]);
      return "unreachable";
    },
  },
  failjoin: {
    async run(ctx) {
      await ctx.spawn([{ key: "f1", name: "fail", data: { message: "no luck" } }, { key: "f2", name: "square", data: { i: 2 } }]);
      return await ctx.waitFor(["f1", "f2"]);
    },
  },
  retryjoin: {
    async run(ctx) {
      await ctx.spawn([{ key: "once", name: "fail", data: { times: 1 } }, { key: "sq", name: "square", data: { i: 3 } }]);
      return await ctx.waitFor(["once", "sq"]);
    },
  },
  square: {
    async run(ctx) {
      if (ctx.data.ms) await new Promise((r) => setTimeout(r, ctx.data.ms));
      return { sq: ctx.data.i * ctx.data.i };
    },
  },
};
`;

beforeAll(async () => {
  writeFileSync(join(dir, "fan.ts"), MODULE);
  c = await startCluster({
    tag: "spawn",
    workers: 0,
    env: { FLOWD_HANDLERS: join(dir, "fan.ts"), FLOWD_EXTERNAL_QUEUES: "ext,held", WORKER_CONCURRENCY: "1", FLOWD_LOCK_DURATION_MS: "3000", FLOWD_STALLED_INTERVAL_MS: "1000" },
  });
  await c.startWorker({ FLOWD_PUBLIC_URL: c.apis[0]!.url });
}, 120_000);
afterAll(async () => {
  node?.kill("SIGKILL");
  await holder?.close(true);
  await c?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const http = () => c.apis[0]!.http;
type Job = { key: string; name: string; queue?: string; data?: Record<string, unknown>; dependsOn?: string[] };

async function create(jobs: Job[], name = "g") {
  // The API learns the worker's module handlers from the registry's notification, a moment after the worker is ready.
  const res = await waitFor(async () => {
    const r = await http()("POST", "/v1/flows", { name, jobs });
    return r.status === 400 && r.body.error.code === "unknown_handler" ? null : r;
  }, 10_000, "the API to know the module's handlers");
  expect(res.status).toBe(201);
  return res.body as { id: string; jobs: { key: string; id: string; jobId: string; status: string }[] };
}

async function finished(id: string, ms = 60_000) {
  return waitFor(async () => {
    const res = await http()("GET", `/v1/flows/${id}?wait=5`);
    if (res.status !== 200) throw new Error(`GET /v1/flows/${id}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    return res.body.status !== "running" ? res.body : null;
  }, ms, `flow ${id} to finish`);
}

const sumOfSquares = (n: number) => Array.from({ length: n }, (_, i) => i * i).reduce((a, b) => a + b, 0);

describe("jobs added while a flow runs", () => {
  test("a module handler spawns 50 jobs and joins on them with WORKER_CONCURRENCY=1: it parks without its slot and completes with their results", async () => {
    const flow = await create([
      { key: "start", name: "sleep", data: { ms: 500 } },
      { key: "fan", name: "fan", data: { n: 50, ms: 20 }, dependsOn: ["start"] },
    ]);
    // Subscribed before the spawn happens: the added jobs reach the socket live.
    const socket = await connectWs(c.apis[0]!.wsUrl, c.token);
    socket.send({ op: "subscribe", flowId: flow.id });
    await socket.next((m) => m.type === "subscribed");
    // While the squares run, the fan job is parked: active, waiting for its 50 children, no worker slot.
    const parked = await waitFor(async () => {
      const res = await http()("GET", `/v1/flows/${flow.id}`);
      const fan = res.body.jobs.find((j: { key: string }) => j.key === "fan");
      return fan.waitingFor?.reason === "children" ? { fan, jobs: res.body.jobs } : null;
    }, 30_000, "the fan job to park");
    expect(parked.fan.status).toBe("active");
    expect(parked.fan.waitingFor.keys.length).toBe(50);
    expect(parked.jobs.length).toBe(52);
    const done = await finished(flow.id);
    expect(done.status).toBe("completed");
    expect(done.jobCount).toBe(52);
    const fan = done.jobs.find((j: { key: string }) => j.key === "fan");
    expect(fan.result).toEqual({ count: 50, sum: sumOfSquares(50), addedThisRun: 0 });
    expect(fan.attemptsMade).toBe(1);
    expect(fan.waitingFor).toBeUndefined();
    const squares = done.jobs.filter((j: { key: string }) => j.key.startsWith("sq-"));
    expect(squares.length).toBe(50);
    for (const s of squares) {
      expect(s.status).toBe("completed");
      expect(s.spawnedBy).toBe("fan");
    }
    // From the last square's end to the fan's: the wake, the handler's second run and its completion.
    const [gap] = await c.database.db.execute<{ ms: number }>(sql`
      select extract(epoch from (select finished_at from flow_jobs where id = ${fan.id})
        - (select max(finished_at) from flow_jobs where flow_id = ${flow.id} and key like 'sq-%')) * 1000 as ms`);
    console.log(`join end → joined job completed: ${Math.round(Number(gap!.ms))} ms`);
    expect(Number(gap!.ms)).toBeLessThan(5_000);
    // The handler ran twice: once to spawn and park, once after the join (re-entry).
    expect(fan.log.lines.map((l: { line: string }) => l.line)).toEqual(["run", "run"]);
    // Each added job was logged as it was added, with its key and who added it.
    const added = await c.database.db.execute<{ data: { key: string; spawnedBy: string } }>(
      sql`select data from events where flow_id = ${flow.id} and type = 'job.updated' and status = 'pending' and data ? 'spawnedBy'`,
    );
    expect(added.length).toBe(50);
    expect(new Set(added.map((e) => e.data.spawnedBy))).toEqual(new Set([fan.id]));
    await waitFor(() => socket.messages.filter((m) => m.type === "event" && m.status === "pending" && m.data?.spawnedBy === fan.id).length === 50, 10_000, "50 added jobs on the socket");
    // The park and the wake were events too (issue #27): the join with the keys it waits for, as the view shows them, then cleared.
    const fanEvents = socket.messages.filter((m) => m.type === "event" && m.event === "job.updated" && m.jobId === fan.id);
    const parkedAt = fanEvents.findIndex((m) => m.data.waitingFor?.reason === "children");
    expect(parkedAt).toBeGreaterThanOrEqual(0);
    expect(fanEvents[parkedAt].status).toBe("active");
    expect(fanEvents[parkedAt].data.waitingFor).toEqual(parked.fan.waitingFor);
    expect(fanEvents.slice(parkedAt + 1).some((m) => m.status === "active" && m.data.waitingFor === undefined)).toBe(true);
    socket.close();
  }, 90_000);

  test("a module's refused spawn fails its job for good, naming the problem, with nothing added; a joined job that failed fails the join", async () => {
    const flow = await create([{ key: "bad", name: "badspawn" }, { key: "fj", name: "failjoin" }]);
    const done = await finished(flow.id);
    expect(done.status).toBe("failed");
    const by = Object.fromEntries(done.jobs.map((j: { key: string }) => [j.key, j]));
    expect(by.bad.status).toBe("failed");
    expect(by.bad.error.message).toContain("invalid_dependency");
    expect(by.bad.error.message).toContain("'ghost'");
    expect(by.bad.attemptsMade).toBe(1);
    expect(by.z).toBeUndefined();
    expect(by.f1.status).toBe("failed");
    expect(by.f2.status).toBe("completed");
    expect(by.fj.status).toBe("failed");
    expect(by.fj.error.message).toContain("f1 failed (no luck)");
    expect(done.jobCount).toBe(4);
  }, 60_000);

  test("a flow retry re-runs the failed added job and the join that failed with it, keeping the completed one", async () => {
    const flow = await create([{ key: "rj", name: "retryjoin" }]);
    const failed = await finished(flow.id);
    expect(failed.status).toBe("failed");
    const before = Object.fromEntries(failed.jobs.map((j: { key: string }) => [j.key, j]));
    expect([before.rj.status, before.once.status, before.sq.status]).toEqual(["failed", "failed", "completed"]);
    const retry = await http()("POST", `/v1/flows/${flow.id}/retry`);
    expect(retry.status).toBe(200);
    const done = await finished(flow.id);
    expect(done.status).toBe("completed");
    const by = Object.fromEntries(done.jobs.map((j: { key: string }) => [j.key, j]));
    expect(Object.keys(by.rj.result).sort()).toEqual(["once", "sq"]);
    expect(by.rj.result.once).toEqual(by.once.result);
    expect(by.rj.result.sq).toEqual({ sq: 9 });
    expect(by.sq.jobId).toBe(before.sq.jobId);
    expect(done.jobCount).toBe(3);
  }, 60_000);

  test("kill -9 of the worker while a job is parked on a join loses nothing: a new worker runs the rest and the join completes", async () => {
    const flow = await create([{ key: "fan", name: "fan", data: { n: 6, ms: 700 } }]);
    const parked = await waitFor(async () => {
      const res = await http()("GET", `/v1/flows/${flow.id}`);
      const fan = res.body.jobs.find((j: { key: string }) => j.key === "fan");
      return fan.waitingFor?.reason === "children" ? fan : null;
    }, 30_000, "the fan job to park");
    // Its run's lines were kept before it parked: a kill from now on cannot lose them.
    expect(parked.log.lines.map((l: { line: string }) => l.line)).toEqual(["run"]);
    await c.workers[0]!.stop("SIGKILL");
    c.workers.splice(0, 1);
    await c.startWorker({ FLOWD_PUBLIC_URL: c.apis[0]!.url });
    const done = await finished(flow.id);
    expect(done.status).toBe("completed");
    const fan = done.jobs.find((j: { key: string }) => j.key === "fan");
    expect(fan.result).toEqual({ count: 6, sum: sumOfSquares(6), addedThisRun: 0 });
    expect(fan.attemptsMade).toBe(1);
    // Parked, it held no lock the kill could break: it ran once to park, once after the join.
    expect(fan.log.lines.map((l: { line: string }) => l.line)).toEqual(["run", "run"]);
  }, 90_000);

  test("cancelling the flow while a job is parked on a join cancels it and what it added, and leaves nothing in Redis", async () => {
    const flow = await create([{ key: "fan", name: "fan", data: { n: 3, ms: 4_000 } }]);
    await waitFor(async () => {
      const res = await http()("GET", `/v1/flows/${flow.id}`);
      return res.body.jobs.find((j: { key: string }) => j.key === "fan").waitingFor?.reason === "children";
    }, 30_000, "the fan job to park");
    const cancel = await http()("POST", `/v1/flows/${flow.id}/cancel`);
    expect(cancel.status).toBe(200);
    const done = await finished(flow.id);
    expect(done.status).toBe("cancelled");
    expect(done.jobs.map((j: { key: string; status: string }) => [j.key, j.status])).toEqual([
      ["fan", "cancelled"],
      ["sq-0", "cancelled"],
      ["sq-1", "cancelled"],
      ["sq-2", "cancelled"],
    ]);
    const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      await waitFor(async () => (await redis.exists(`${c.prefix}:flows:${flow.jobs[0]!.jobId}`)) === 0, 20_000, "the parked job to leave Redis");
    } finally {
      redis.disconnect();
    }
  }, 60_000);

  test("your own node BullMQ worker (concurrency 1) spawns through the REST route with its lock token, parks, and completes with the parts' results", async () => {
    const lines: { id?: string; status?: number; answer?: { parked: boolean; jobs: { added: boolean }[]; results?: Record<string, unknown> } }[] = [];
    node = await startNodeWorker({ dir, script: WORKER, env: { REDIS_URL, PREFIX: c.prefix, API: c.apis[0]!.url, TOKEN: c.token }, messages: lines });
    const flow = await create([{ key: "split", name: "split", queue: "ext" }]);
    const done = await finished(flow.id);
    expect(done.status).toBe("completed");
    const split = done.jobs.find((j: { key: string }) => j.key === "split");
    expect(split.result).toEqual({ total: 60 });
    expect(split.attemptsMade).toBe(1);
    expect(done.jobs.map((j: { key: string }) => j.key).sort()).toEqual(["p0", "p1", "p2", "p3", "split"]);
    const answers = lines.filter((l) => l.id === split.jobId);
    // First run: added and parked; the run after the join: nothing added, the results.
    expect(answers[0]!.status).toBe(200);
    expect(answers[0]!.answer!.parked).toBe(true);
    expect(answers[0]!.answer!.jobs.every((j) => j.added)).toBe(true);
    const last = answers.at(-1)!.answer!;
    expect(last.parked).toBe(false);
    expect(last.jobs.some((j) => j.added)).toBe(false);
    expect(last.results).toEqual({ p0: { v: 0 }, p1: { v: 10 }, p2: { v: 20 }, p3: { v: 30 } });
  }, 60_000);

  test("an http task's service adds jobs through its callback URL while its request is in flight; after the attempt, the URL adds nothing", async () => {
    const urls: string[] = [];
    const answers: unknown[] = [];
    const service = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const callback = req.headers.get("flowd-callback-url")!;
        urls.push(callback);
        const res = await fetch(`${callback}/spawn`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jobs: [{ key: "t1", name: "echo", data: { from: "task" } }, { key: "t2", name: "echo", dependsOn: ["t1", "task"] }] }),
        });
        answers.push({ status: res.status, body: await res.json() });
        return Response.json({ spawned: res.status });
      },
    });
    try {
      const flow = await create([{ key: "task", name: "http", data: { url: `http://127.0.0.1:${service.port}/`, method: "POST" } }]);
      const done = await finished(flow.id);
      expect(done.status).toBe("completed");
      expect(answers).toEqual([{ status: 200, body: { jobs: [expect.objectContaining({ key: "t1", added: true }), expect.objectContaining({ key: "t2", added: true })] } }]);
      const by = Object.fromEntries(done.jobs.map((j: { key: string }) => [j.key, j]));
      expect(by.task.result.body).toEqual({ spawned: 200 });
      expect(by.t2.result.parents.t1.data).toEqual({ from: "task" });
      expect(by.t2.result.parents.task.body).toEqual({ spawned: 200 });
      expect(by.t1.spawnedBy).toBe("task");
      const late = await fetch(`${urls[0]}/spawn`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jobs: [{ key: "t3", name: "echo" }] }) });
      expect(late.status).toBe(409);
      expect(((await late.json()) as { error: { code: string } }).error.code).toBe("attempt_ended");
      expect((await http()("GET", `/v1/flows/${flow.id}`)).body.jobCount).toBe(3);
    } finally {
      service.stop(true);
    }
  }, 60_000);

  describe("bad spawns are refused with nothing written", () => {
    // The test itself holds jobs of the `held` queue as a worker would, to have their lock tokens.
    const held = new Map<string, { token: string; release: (v: unknown) => void }>();
    const heldJob = (jobId: string) => waitFor(() => held.get(jobId) ?? null, 20_000, `job ${jobId} to be held`);
    const spawn = (jobId: string, body: unknown, token?: string) => http()("POST", `/v1/jobs/${jobId}/spawn`, body, token ? { token } : {});

    async function written(flowId: string) {
      const [row] = await c.database.db.execute<{ jobs: number; count: number; events: number }>(sql`
        select (select count(*)::int from flow_jobs where flow_id = ${flowId}) as jobs,
               (select job_count from flows where id = ${flowId}) as count,
               (select count(*)::int from events where flow_id = ${flowId} and data ? 'spawnedBy') as events`);
      return row!;
    }

    test("each bad input is a clear 4xx naming the path; the flow is as it was", async () => {
      holder = new Worker("held", (job, token) => new Promise((resolve) => held.set(job.id!, { token: token!, release: resolve })), {
        connection: new IORedis(REDIS_URL, { maxRetriesPerRequest: null }),
        prefix: c.prefix,
        concurrency: 10,
      });
      const ks = Array.from({ length: 11 }, (_, i) => ({ key: `k${i}`, name: "echo" }));
      const flow = await create([{ key: "me", name: "hold", queue: "held" }, { key: "broken", name: "fail" }, { key: "after", name: "echo", dependsOn: ["me"] }, ...ks]);
      const me = flow.jobs.find((j) => j.key === "me")!;
      const { token } = await heldJob(me.jobId);
      await waitFor(async () => (await http()("GET", `/v1/flows/${flow.id}`)).body.jobs.find((j: { key: string }) => j.key === "broken").status === "failed", 20_000, "broken to fail");
      const before = await written(flow.id);
      expect(before).toEqual({ jobs: 14, count: 14, events: 0 });

      const job = (key: string, extra: Record<string, unknown> = {}) => ({ key, name: "echo", ...extra });
      const cases: [string, unknown, number, string, string | null][] = [
        ["a lock token that is not the attempt's", { lockToken: "nope", jobs: [job("x")] }, 409, "attempt_ended", null],
        ["no lock token", { jobs: [job("x")] }, 400, "invalid_input", null],
        ["neither jobs nor waitFor", { lockToken: token }, 400, "invalid_input", "/jobs"],
        ["an empty jobs", { lockToken: token, jobs: [] }, 400, "invalid_input", null],
        ["a key of the flow", { lockToken: token, jobs: [job("x"), job("k3")] }, 400, "duplicate_key", "/jobs/1/key"],
        ["a key twice", { lockToken: token, jobs: [job("x"), job("x")] }, 400, "duplicate_key", "/jobs/1/key"],
        ["a bad key", { lockToken: token, jobs: [job("a b")] }, 400, "invalid_input", null],
        ["an unknown dependency", { lockToken: token, jobs: [job("x", { dependsOn: ["k1", "ghost"] })] }, 400, "invalid_dependency", "/jobs/0/dependsOn/1"],
        ["a dependency on itself", { lockToken: token, jobs: [job("x", { dependsOn: ["x"] })] }, 400, "invalid_dependency", "/jobs/0/dependsOn/0"],
        ["a dependency on a failed job", { lockToken: token, jobs: [job("x", { dependsOn: ["broken"] })] }, 400, "invalid_dependency", "/jobs/0/dependsOn/0"],
        ["a cycle", { lockToken: token, jobs: [job("x", { dependsOn: ["y"] }), job("y", { dependsOn: ["x"] })] }, 400, "dependency_cycle", null],
        ["11 dependencies on one added job", { lockToken: token, jobs: [job("x", { dependsOn: ks.map((k) => k.key) })] }, 400, "too_many_edges", "/jobs"],
        ["past FLOWD_MAX_FLOW_JOBS", { lockToken: token, jobs: Array.from({ length: 990 }, (_, i) => job(`n${i}`)) }, 400, "too_many_jobs", "/jobs"],
        ["an unknown handler", { lockToken: token, jobs: [{ key: "x", name: "nope" }] }, 400, "unknown_handler", "/jobs/0/name"],
        ["a join on an unknown key", { lockToken: token, jobs: [job("x")], waitFor: ["x", "ghost"] }, 400, "invalid_join", "/waitFor/1"],
        ["a join on itself", { lockToken: token, jobs: [job("x")], waitFor: ["me"] }, 400, "invalid_join", "/waitFor/0"],
        ["a join on a job that waits for it", { lockToken: token, jobs: [job("x")], waitFor: ["k2", "after"] }, 400, "invalid_join", "/waitFor/1"],
        ["a join on an added job that depends on it", { lockToken: token, jobs: [job("x", { dependsOn: ["me"] })], waitFor: ["x"] }, 400, "invalid_join", "/waitFor/0"],
        [
          "a join on an added job that depends on it through others",
          { lockToken: token, jobs: [job("x", { dependsOn: ["y"] }), job("y", { dependsOn: ["k1", "after"] })], waitFor: ["k2", "x"] },
          400,
          "invalid_join",
          "/waitFor/1",
        ],
        ["a body over FLOWD_BODY_LIMIT", { lockToken: token, jobs: [job("x", { data: { pad: "x".repeat(1_100_000) } })] }, 413, "payload_too_large", null],
      ];
      for (const [what, body, status, code, path] of cases) {
        const res = await spawn(me.jobId, body);
        expect({ what, status: res.status, code: res.body?.error?.code }).toEqual({ what, status, code });
        if (path) expect({ what, paths: res.body.error.details.map((d: { path: string }) => d.path) }).toEqual({ what, paths: [path] });
      }
      // Another user's job answers as a missing one.
      const other = await c.newUser("mallory");
      const theirs = await spawn(me.jobId, { lockToken: token, jobs: [job("x")] }, other);
      expect(theirs.status).toBe(404);
      expect(await written(flow.id)).toEqual(before);

      // A good spawn from the same attempt is taken; once the attempt ended, its token adds nothing.
      const good = await spawn(me.jobId, { lockToken: token, jobs: [job("x", { dependsOn: ["k0"] })] });
      expect(good.status).toBe(200);
      expect(good.body.jobs.map((j: { key: string; added: boolean }) => [j.key, j.added])).toEqual([["x", true]]);
      held.get(me.jobId)!.release({ held: true });
      await waitFor(async () => (await http()("GET", `/v1/flows/${flow.id}`)).body.jobs.find((j: { key: string }) => j.key === "me").status === "completed", 20_000, "me to complete");
      const ended = await spawn(me.jobId, { lockToken: token, jobs: [job("y")] });
      expect(ended.status).toBe(409);
      expect(ended.body.error.code).toBe("attempt_ended");
      const done = await finished(flow.id);
      expect(done.status).toBe("failed"); // `broken` failed
      expect(done.jobs.find((j: { key: string }) => j.key === "x").status).toBe("completed");
      expect(await written(flow.id)).toEqual({ jobs: 15, count: 15, events: 1 });
    }, 60_000);

    test("a tree flow's job cannot spawn: 409 not_a_graph", async () => {
      const res = await http()("POST", "/v1/flows", { name: "tree", root: { name: "hold", queue: "held" } });
      expect(res.status).toBe(201);
      const { token } = await heldJob(res.body.root.jobId);
      const refused = await spawn(res.body.root.jobId, { lockToken: token, jobs: [{ key: "x", name: "echo" }] });
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("not_a_graph");
      held.get(res.body.root.jobId)!.release({});
      expect((await finished(res.body.id)).jobCount).toBe(1);
    }, 30_000);
  });
});
