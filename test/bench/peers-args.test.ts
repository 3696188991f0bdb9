import { describe, expect, test } from "bun:test";
import { FULL, parsePeersArgs, PeersArgsError, QUICK, SYSTEMS } from "../../bench/peers/args";

describe("bench peers' arguments", () => {
  test("none: the full comparison of every system", () => {
    const args = parsePeersArgs([]);
    expect(args).toEqual({ quick: false, systems: [...SYSTEMS], sizes: FULL });
    expect(FULL).toMatchObject({ reps: 3, bulkJobs: 20_000, bulkBatch: 1_000, clients: 16, singlesSeconds: 10, flows: 5, flowSize: 1_000, latencyJobs: 100 });
  });

  test("--quick shrinks the sizes; --reps overrides the count", () => {
    expect(parsePeersArgs(["--quick"]).sizes).toEqual(QUICK);
    expect(QUICK.bulkJobs).toBeLessThan(FULL.bulkJobs);
    expect(parsePeersArgs(["--quick", "--reps=2"]).sizes).toEqual({ ...QUICK, reps: 2 });
    expect(parsePeersArgs(["--reps=5"]).sizes).toEqual({ ...FULL, reps: 5 });
  });

  test("--only keeps plain BullMQ, the baseline of every ratio, in the canonical order", () => {
    expect(parsePeersArgs(["--only=graphile,flowd"]).systems).toEqual(["flowd", "bullmq", "graphile"]);
    expect(parsePeersArgs(["--only=bullmq"]).systems).toEqual(["bullmq"]);
  });

  test.each([
    [["--reps=0"], /--reps takes a whole number from 1 to 99, got "0"/],
    [["--reps=1.5"], /--reps takes a whole number/],
    [["--reps=abc"], /--reps takes a whole number/],
    [["--reps"], /--reps takes a whole number from 1 to 99, got ""/],
    [["--reps=100"], /--reps takes a whole number/],
    [["--only=flowd,sidekiq"], /unknown: "sidekiq"/],
    [["--only="], /--only takes a comma-separated list of flowd, bullmq, bullmq-pg, pg-boss, graphile/],
    [["--only"], /--only takes a comma-separated list/],
    [["--quick=yes"], /unknown argument "--quick=yes"/],
    [["--fast"], /unknown argument "--fast"; usage: bun run bench peers/],
    [["peers"], /unknown argument "peers"/],
  ])("refuses %p with a clear error", (argv, message) => {
    expect(() => parsePeersArgs(argv)).toThrow(PeersArgsError);
    expect(() => parsePeersArgs(argv)).toThrow(message);
  });
});
