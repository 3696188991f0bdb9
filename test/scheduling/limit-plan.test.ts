import { describe, expect, test } from "bun:test";
import { planRelease, type HeldJob, type KeyState } from "../../src/scheduling/limit-plan";

const key = (k: string, over: Partial<KeyState> = {}): KeyState => ({ key: k, concurrency: null, rateMax: null, ratePerMs: null, rateNextMs: null, turn: 0, ...over });
const job = (id: string, concurrencyKeys: string[] | null, rateKey: string | null = null): HeldJob => ({
  tbl: "jobs",
  id,
  concurrencyKeys,
  rateKey,
  waitingFor: concurrencyKeys ? "concurrency" : "rateLimit",
});

describe("planRelease", () => {
  test("keys sharing a limit take turns, the key served longest ago first", () => {
    const keys = [key("shared", { concurrency: 4 }), key("A", { turn: 5 }), key("B", { turn: 1 })];
    const held = [
      ...["a1", "a2", "a3", "a4", "a5"].map((id) => job(id, ["A", "shared"])),
      ...["b1", "b2"].map((id) => job(id, ["B", "shared"])),
    ];
    const plan = planRelease(keys, new Map(), held, 1_000);
    expect(plan.release.map((j) => j.id)).toEqual(["b1", "a1", "b2", "a2"]);
    // The head left waiting is there because of the full shared key; its recorded reason holds.
    expect(plan.reasons).toEqual([]);
    expect(plan.keys.find((k) => k.key === "A")!.turn).toBeGreaterThan(plan.keys.find((k) => k.key === "B")!.turn);
  });

  test("running jobs count against every key they name; a job goes only when all have room", () => {
    const keys = [key("x", { concurrency: 2 }), key("y", { concurrency: 1 })];
    const plan = planRelease(keys, new Map([["y", 1]]), [job("j1", ["y", "x"]), job("j2", ["x"]), job("j3", ["x"]), job("j4", ["x"])], 0);
    expect(plan.release.map((j) => j.id)).toEqual(["j2", "j3"]);
  });

  test("within a turn key, a blocked job is not overtaken", () => {
    const keys = [key("t", { concurrency: 10 }), key("z", { concurrency: 1 })];
    const plan = planRelease(keys, new Map([["z", 1]]), [job("first", ["t", "z"]), job("second", ["t"])], 0);
    expect(plan.release).toEqual([]);
  });

  test("a rate limit spaces starts evenly and says when the next is due", () => {
    const keys = [key("r", { rateMax: 10, ratePerMs: 1000, rateNextMs: 5_000 })];
    const held = Array.from({ length: 5 }, (_, i) => job(`r${i}`, null, "r"));
    expect(planRelease(keys, new Map(), held, 4_990).release).toEqual([]);
    const due = planRelease(keys, new Map(), held, 5_000);
    expect(due.release.map((j) => j.id)).toEqual(["r0"]);
    expect(due.keys[0]!.rateNextMs).toBe(5_100);
    expect(due.wakeAtMs).toBe(5_100);
  });

  test("a late pass catches up a fifth of the period at most, so an idle key does not burst", () => {
    const keys = [key("r", { rateMax: 10, ratePerMs: 1000, rateNextMs: 0 })];
    const held = Array.from({ length: 20 }, (_, i) => job(`r${i}`, null, "r"));
    // Idle for 100 s: 200 ms of catch-up is 2 starts, plus the one due now.
    expect(planRelease(keys, new Map(), held, 100_000).release.length).toBe(3);
  });

  test("a blocked head records why it waits when that changed", () => {
    const keys = [key("c", { concurrency: 5, rateMax: 1, ratePerMs: 1000, rateNextMs: 10_000 })];
    const plan = planRelease(keys, new Map(), [job("j", ["c"], "c")], 0);
    expect(plan.reasons).toEqual([{ job: expect.objectContaining({ id: "j" }), reason: "rateLimit" }]);
  });
});
