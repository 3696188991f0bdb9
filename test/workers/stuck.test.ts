import { describe, expect, test } from "bun:test";
import { heldOnPurpose, isStuck } from "../../src/workers/supervised-worker";

describe("when a worker counts as stuck", () => {
  const base = { waitingSince: 0, lastStartAt: 0, running: 0, now: 30_000, stuckMs: 30_000 };
  test("idle while jobs waited the whole time", () => expect(isStuck(base)).toBe(true));
  test("not while it runs a job: a long job is not a stuck worker", () => expect(isStuck({ ...base, running: 1 })).toBe(false));
  test("not when jobs have waited less than the limit", () => expect(isStuck({ ...base, waitingSince: 1 })).toBe(false));
  test("not when it started a job within the limit (the head is another worker's to take)", () =>
    expect(isStuck({ ...base, lastStartAt: 1 })).toBe(false));
});

describe("when a waiting head job is held on purpose (no replacement)", () => {
  test("a rate limit in force", () => expect(heldOnPurpose({ limiterTtlMs: 500, concurrency: null, active: 0 })).toBe(true));
  test("a global concurrency cap reached by other processes", () =>
    expect(heldOnPurpose({ limiterTtlMs: -2, concurrency: 4, active: 4 })).toBe(true));
  test("neither: a cap not reached, no limiter key", () => expect(heldOnPurpose({ limiterTtlMs: -2, concurrency: 4, active: 1 })).toBe(false));
  test("no cap at all", () => expect(heldOnPurpose({ limiterTtlMs: -2, concurrency: null, active: 40 })).toBe(false));
});
