import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { countKeys } from "../helpers/redis";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 1, tag: "bulk" });
}, 60_000);
afterAll(async () => {
  await stack?.stop();
});

const bulk = (jobs: unknown[], headers: Record<string, string> = {}) => stack.http("POST", "/v1/jobs/bulk", { jobs }, { headers });
const counts = async () => {
  const [row] = await stack.database.sql<{ jobs: number; events: number }[]>`
    select (select count(*) from jobs)::int as jobs, (select count(*) from events)::int as events`;
  return { ...row!, redisKeys: await countKeys(stack.config.prefix) };
};

describe("POST /v1/jobs/bulk", () => {
  test("1,000 jobs: 201 with the items in order, and every one completes in Postgres", async () => {
    const jobs = Array.from({ length: 1000 }, (_, i) => ({ name: "echo", data: { i } }));
    const res = await bulk(jobs);
    expect(res.status).toBe(201);
    expect(res.body.items).toHaveLength(1000);
    expect(res.body.items.map((j: any) => j.data.i)).toEqual(jobs.map((j) => j.data.i));
    expect(new Set(res.body.items.map((j: any) => j.status))).toEqual(new Set(["waiting"]));
    const ids = res.body.items.map((j: any) => j.id);
    await waitFor(
      async () => Number((await stack.database.sql`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`)[0]!.n) === 1000,
      60_000,
      "all 1,000 completed",
    );
    const one = await stack.http("GET", `/v1/jobs/${ids[999]}`);
    expect(one.body.result).toMatchObject({ data: { i: 999 } });
  }, 90_000);

  test("one bad job refuses the whole request, naming its index, and nothing is written", async () => {
    const before = await counts();
    const jobs = [{ name: "echo" }, { name: "echo" }, { name: "echo" }, { name: "nope" }, { name: "echo" }];
    const res = await bulk(jobs);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("unknown_handler");
    expect(res.body.error.message).toContain("Job 3");
    expect(res.body.error.details[0].path).toBe("/jobs/3/name");
    const badData = await bulk([{ name: "echo" }, { name: "sleep", data: { ms: "long" } }]);
    expect(badData.status).toBe(400);
    expect(badData.body.error.code).toBe("invalid_job_data");
    expect(badData.body.error.details[0].path).toStartWith("/jobs/1/data");
    expect(await counts()).toEqual(before);
  });

  test("no jobs, 1,001 jobs, or a body that is not a list of jobs are 400 invalid_input", async () => {
    const before = await counts();
    for (const body of [{ jobs: [] }, { jobs: Array.from({ length: 1001 }, () => ({ name: "echo" })) }, { jobs: "echo" }, { job: [{ name: "echo" }] }]) {
      const res = await stack.http("POST", "/v1/jobs/bulk", body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_input");
    }
    expect(await counts()).toEqual(before);
  });

  test("Idempotency-Key: a repeat answers the first items; the same key with another body is 409", async () => {
    const jobs = [{ name: "echo", data: { k: 1 } }, { name: "echo", data: { k: 2 } }];
    const first = await bulk(jobs, { "idempotency-key": "bulk-key-1" });
    expect(first.status).toBe(201);
    const again = await bulk(jobs, { "idempotency-key": "bulk-key-1" });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body.items.map((j: any) => j.id)).toEqual(first.body.items.map((j: any) => j.id));
    const other = await bulk([{ name: "echo" }], { "idempotency-key": "bulk-key-1" });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("idempotency_key_reused");
    const [row] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where data->>'k' is not null`;
    expect(row!.n).toBe(2);
  });

  test("16 concurrent single creates (group-committed) each answer their own job, and all complete", async () => {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => stack.http("POST", "/v1/jobs", { name: "echo", data: { gc: i } })));
    expect(results.map((r) => r.status)).toEqual(Array(16).fill(201));
    expect(results.map((r) => r.body.data.gc)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(16);
    for (const r of results) expect((await stack.http("GET", `/v1/jobs/${r.body.id}`)).body.data).toEqual(r.body.data);
    const ids = results.map((r) => r.body.id);
    await waitFor(
      async () => Number((await stack.database.sql`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`)[0]!.n) === 16,
      30_000,
      "all 16 completed",
    );
  });
});
