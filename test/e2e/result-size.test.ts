import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// A result is kept in Redis and Postgres and handed to every dependent: past FLOWD_MAX_RESULT_BYTES
// the attempt fails for good, saying what to do, and nothing of the value is stored.
let s: Stack;
beforeAll(async () => {
  s = await startStack({ tag: "rsize", env: { FLOWD_MAX_RESULT_BYTES: "4096" } });
}, 60_000);
afterAll(async () => {
  await s?.stop();
});

const finished = (path: string) =>
  waitFor(async () => {
    const res = await s.http("GET", `${path}?wait=5`);
    return ["completed", "failed", "cancelled"].includes(res.body.status) ? res.body : null;
  }, 60_000, `${path} to finish`);

describe("FLOWD_MAX_RESULT_BYTES", () => {
  test("a result over the bound fails the job without retries, naming the bound; one under it completes", async () => {
    const big = await s.http("POST", "/v1/jobs", { name: "echo", data: { text: "x".repeat(5000) }, opts: { attempts: 3 } });
    const small = await s.http("POST", "/v1/jobs", { name: "echo", data: { text: "x".repeat(1000) } });
    expect(big.status).toBe(201);
    expect(small.status).toBe(201);
    const failed = await finished(`/v1/jobs/${big.body.id}`);
    expect(failed.status).toBe("failed");
    expect(failed.error.message).toContain("over FLOWD_MAX_RESULT_BYTES (4096)");
    expect(failed.error.message).toContain("return a reference");
    // A permanent failure: one attempt, not three.
    expect(failed.attemptsMade).toBe(1);
    const [row] = await s.database.db.execute<{ result: unknown }>(sql`select result from jobs where id = ${big.body.id}`);
    expect(row!.result).toBeNull();
    expect((await finished(`/v1/jobs/${small.body.id}`)).status).toBe("completed");
  }, 90_000);

  test("in a graph, the job whose result is too big fails and its dependents end cancelled naming it", async () => {
    const created = await s.http("POST", "/v1/flows", {
      name: "too big",
      jobs: [
        { key: "a", name: "echo", data: { text: "y".repeat(3000) } },
        { key: "b", name: "echo", data: { text: "z".repeat(3000) } },
        // c echoes a and b: 6,000 bytes of results, over the bound.
        { key: "c", name: "echo", dependsOn: ["a", "b"] },
        { key: "d", name: "echo", dependsOn: ["c"] },
      ],
    });
    expect(created.status).toBe(201);
    const flow = await finished(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("failed");
    const jobs = (await s.http("GET", `/v1/flows/${created.body.id}`)).body.jobs as { key: string; status: string; error?: { message: string } }[];
    const byKey = Object.fromEntries(jobs.map((j) => [j.key, j]));
    expect(byKey.a!.status).toBe("completed");
    expect(byKey.c!.status).toBe("failed");
    expect(byKey.c!.error!.message).toContain("FLOWD_MAX_RESULT_BYTES");
    expect(byKey.d!.status).toBe("cancelled");
    expect(byKey.d!.error!.message).toContain("c failed");
  }, 90_000);
});
