import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRateLimiter } from "../../src/api/rate-limit";
import { startStack, type Stack } from "../helpers/stack";

describe("the token bucket", () => {
  test("allows bursts of twice the rate, then one request per 1/rate seconds", () => {
    let now = 0;
    const take = createRateLimiter(5, () => now);
    for (let i = 0; i < 10; i++) expect(take("u")).toBe(0);
    expect(take("u")).toBe(1);
    expect(take("other")).toBe(0);
    now += 200; // one token back
    expect(take("u")).toBe(0);
    expect(take("u")).toBe(1);
    now += 10_000; // refills up to the burst, no further
    for (let i = 0; i < 10; i++) expect(take("u")).toBe(0);
    expect(take("u")).toBe(1);
  });
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "rl", env: { FLOWD_RATE_LIMIT: "5" } });
});
afterAll(async () => {
  await stack?.stop();
});

describe("FLOWD_RATE_LIMIT over HTTP", () => {
  test("past the burst a user gets 429 rate_limited with Retry-After, and nothing is created", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await stack.http("GET", "/v1/flows")).status);
    expect(statuses).toEqual(Array(10).fill(200)); // a burst of twice the rate
    // Drain whatever refilled meanwhile, then a create must be refused.
    let refused = await stack.http("POST", "/v1/flows", { name: "over", root: { name: "echo" } });
    for (let i = 0; i < 20 && refused.status !== 429; i++) refused = await stack.http("POST", "/v1/flows", { name: "over", root: { name: "echo" } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("rate_limited");
    expect(refused.body.error.message).toContain("per second");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const [row] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows where name = 'over'`;
    // Only creates that got through exist: every refused one left nothing.
    const created = Number(row!.n);
    const [jobs] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs`;
    expect(Number(jobs!.n)).toBe(created);

    // Another user has a bucket of their own.
    const bob = await stack.newUser("bob-rl");
    expect((await stack.http("GET", "/v1/flows", undefined, { token: bob })).status).toBe(200);
  });
});
