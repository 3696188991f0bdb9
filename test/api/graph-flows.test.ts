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
