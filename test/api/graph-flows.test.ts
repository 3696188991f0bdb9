import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startStack, type Stack } from "../helpers/stack";

/** The graph form's refusals: each a 400 naming the job, with nothing written. No worker is needed. */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "graph-in", env: { FLOWD_MAX_FLOW_JOBS: "30" } });
});
afterAll(async () => await stack?.stop());

const count = async () => {
  const [row] = await stack.database.db.execute<{ flows: number; jobs: number }>(
    sql`select (select count(*) from flows)::int as flows, (select count(*) from flow_jobs)::int as jobs`,
  );
  return row!;
};

async function refused(body: unknown, code: string, path: RegExp, message: RegExp) {
  const res = await stack.http("POST", "/v1/flows", body);
  expect(res.status).toBe(400);
  expect(res.body.error.code).toBe(code);
  expect(res.body.error.message).toMatch(message);
  const details = res.body.error.details as { path: string; message: string }[];
  expect(details.some((d) => path.test(d.path))).toBe(true);
  return res.body.error;
}

describe("graph flow input", () => {
  test("duplicate key, unknown or self dependency, repeated dependency", async () => {
    await refused({ name: "g", jobs: [{ key: "a", name: "echo" }, { key: "a", name: "echo" }] }, "duplicate_key", /^\/jobs\/1\/key$/, /key 'a'.*already used by \/jobs\/0/);
    await refused({ name: "g", jobs: [{ key: "a", name: "echo", dependsOn: ["nope"] }] }, "invalid_dependency", /^\/jobs\/0\/dependsOn\/0$/, /'nope', which is no job's key/);
    await refused({ name: "g", jobs: [{ key: "a", name: "echo", dependsOn: ["a"] }] }, "invalid_dependency", /^\/jobs\/0\/dependsOn\/0$/, /key 'a'.*cannot depend on itself/);
    await refused(
      { name: "g", jobs: [{ key: "a", name: "echo" }, { key: "b", name: "echo", dependsOn: ["a", "a"] }] },
      "invalid_dependency",
      /^\/jobs\/1\/dependsOn\/1$/,
      /'a' twice/,
    );
    expect(await count()).toEqual({ flows: 0, jobs: 0 });
  });

  test("a cycle is named key by key", async () => {
    const error = await refused(
      {
        name: "g",
        jobs: [
          { key: "start", name: "echo" },
          { key: "x", name: "echo", dependsOn: ["start", "z"] },
          { key: "y", name: "echo", dependsOn: ["x"] },
          { key: "z", name: "echo", dependsOn: ["y"] },
        ],
      },
      "dependency_cycle",
      /^\/jobs\/\d\/dependsOn$/,
      /cycle/,
    );
    expect([...error.details[0].keys].sort()).toEqual(["x", "y", "z"]);
    expect(error.message).not.toContain("start");
    expect(await count()).toEqual({ flows: 0, jobs: 0 });
  });

  test("limits: jobs (FLOWD_MAX_FLOW_JOBS) and edges (10 per job)", async () => {
    const jobs = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `j${i}`, name: "echo" }));
    await refused({ name: "g", jobs: jobs(31) }, "too_many_jobs", /^\/jobs$/, /more than 30/);
    // Every job depending on all before it: 23 jobs have 253 edges, more than 230.
    const dense = (n: number) => jobs(n).map((j, i) => ({ ...j, dependsOn: jobs(i).map((d) => d.key) }));
    await refused({ name: "g", jobs: dense(23) }, "too_many_edges", /^\/jobs$/, /253 dependencies, more than 10 per job \(230\)/);
    // 21 jobs have 210 edges: within the limit.
    expect((await stack.http("POST", "/v1/flows", { name: "g", jobs: dense(21) })).status).toBe(201);
    const [row] = await stack.database.db.execute<{ n: number }>(sql`select count(*)::int as n from flows`);
    expect(row!.n).toBe(1);
  });

  test("a bad key, an empty jobs, both root and jobs, neither", async () => {
    const before = await count();
    for (const body of [
      { name: "g", jobs: [{ key: "has space", name: "echo" }] },
      { name: "g", jobs: [{ key: "x".repeat(65), name: "echo" }] },
      { name: "g", jobs: [] },
      { name: "g", root: { name: "echo" }, jobs: [{ key: "a", name: "echo" }] },
      { name: "g" },
    ]) {
      const res = await stack.http("POST", "/v1/flows", body);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toBeDefined();
    }
    expect(await count()).toEqual(before);
  });

  test("a bad job's data or queue is refused at its path", async () => {
    await refused({ name: "g", jobs: [{ key: "a", name: "echo" }, { key: "b", name: "sleep", data: { ms: "x" } }] }, "invalid_job_data", /^\/jobs\/1/, /jobs\/1/);
    await refused({ name: "g", jobs: [{ key: "a", name: "echo", queue: "nope" }] }, "unknown_queue", /^\/jobs\/0\/queue$/, /Unknown queue 'nope'/);
  });
});

describe("idempotency", () => {
  test("a repeated graph create with one Idempotency-Key answers the first flow, with its jobs", async () => {
    const body = { name: "once", jobs: [{ key: "a", name: "echo" }, { key: "b", name: "echo", dependsOn: ["a"] }] };
    const headers = { "idempotency-key": "graph-once" };
    const first = await stack.http("POST", "/v1/flows", body, { headers });
    const second = await stack.http("POST", "/v1/flows", body, { headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(second.body.id).toBe(first.body.id);
    expect(second.body.jobs.map((j: { key: string; dependsOn: string[] }) => [j.key, j.dependsOn])).toEqual([["a", []], ["b", ["a"]]]);
    const other = await stack.http("POST", "/v1/flows", { ...body, name: "other" }, { headers });
    expect(other.status).toBe(409);
  });
});

describe("a release that never reached Redis", () => {
  test("the enqueuer adds a released job left pending, with its dependency's result, never a held one, and releases a stale hold", async () => {
    const { connectRedis } = await import("../../src/redis");
    const { createProducer } = await import("../../src/queues");
    const { startEnqueuer } = await import("../../src/workers/enqueuer");
    const { createLogger } = await import("../../src/log");
    const { flowsWithPendingJobs } = await import("../../src/db/queries/flows");
    const db = stack.database.db;
    const res = await stack.http("POST", "/v1/flows", {
      name: "crash",
      jobs: [
        { key: "a", name: "echo" },
        { key: "b", name: "echo", dependsOn: ["a"] },
        { key: "c", name: "echo", dependsOn: ["b"] },
      ],
    });
    expect(res.status).toBe(201);
    const [a, b, c] = res.body.jobs as { id: string; jobId: string }[];
    // Held jobs are not the enqueuer's: only `a`, already in Redis, exists for it and it is not pending.
    expect(await flowsWithPendingJobs(db, 0, 50)).not.toContain(res.body.id);
    // What a recorder's batch commits before its process dies: `a` completed and `b` released.
    await db.execute(sql`update flow_jobs set status = 'completed', result = '{"from":"a"}', event_pos = 1 where id = ${a!.id}`);
    await db.execute(sql`update flow_jobs set waiting_for = null, updated_at = now() - interval '1 minute' where id = ${b!.id}`);
    expect(await flowsWithPendingJobs(db, 0, 50)).toContain(res.body.id);
    const redis = connectRedis(stack.config, "request", "graph-test");
    const producer = createProducer(redis, stack.config);
    await producer.declare(["flows"]);
    const enqueuer = startEnqueuer({ db, producer, log: createLogger("silent") }, { intervalMs: 100, graceMs: 0 });
    try {
      const queue = producer.at(null).queue("flows");
      const deadline = Date.now() + 10_000;
      while ((await queue.getJobState(b!.jobId)) === "unknown" && Date.now() < deadline) await Bun.sleep(50);
      expect(await queue.getJobState(b!.jobId)).toBe("waiting");
      const job = (await queue.getJob(b!.jobId))!;
      expect(Object.values(await job.getChildrenValues())).toEqual([{ from: "a" }]);
      expect((job.opts as { flowd?: { parentKeys?: Record<string, string> } }).flowd?.parentKeys).toEqual({ [a!.jobId]: "a" });
      expect(await queue.getJobState(c!.jobId)).toBe("unknown");
      // A hold nothing released although its dependency is done (a retry racing the recorder):
      // the enqueuer releases it and adds it.
      await db.execute(sql`update flow_jobs set status = 'completed', result = '{"from":"b"}', event_pos = 1 where id = ${b!.id}`);
      const until = Date.now() + 10_000;
      while ((await queue.getJobState(c!.jobId)) === "unknown" && Date.now() < until) await Bun.sleep(50);
      expect(await queue.getJobState(c!.jobId)).toBe("waiting");
      const [row] = await db.execute<{ waiting_for: string | null }>(sql`select waiting_for from flow_jobs where id = ${c!.id}`);
      expect(row!.waiting_for).toBeNull();
      expect(Object.values(await (await queue.getJob(c!.jobId))!.getChildrenValues())).toEqual([{ from: "b" }]);
    } finally {
      await enqueuer.stop();
      await producer.close();
      redis.disconnect();
    }
  });
});
