import { describe, expect, test } from "bun:test";
import { durationMs, MAX_WAIT_MS, waitStepProblem, waitUntil } from "../../src/handlers/wait-steps";

describe("wait step data", () => {
  test("durations: milliseconds or a number with a unit", () => {
    expect(durationMs(1500)).toBe(1500);
    expect(durationMs("250ms")).toBe(250);
    expect(durationMs("90s")).toBe(90_000);
    expect(durationMs("15m")).toBe(900_000);
    expect(durationMs("2h")).toBe(7_200_000);
    expect(durationMs("3d")).toBe(259_200_000);
    expect(durationMs("1w")).toBe(604_800_000);
    expect(durationMs("3 days")).toBeNaN();
  });

  test("a wait ends at the later of for and until; a past until stays past (runs at once); neither is now", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(waitUntil({ for: "1m" }, now).toISOString()).toBe("2026-01-01T00:01:00.000Z");
    expect(waitUntil({ until: "2026-01-02T00:00:00Z" }, now).toISOString()).toBe("2026-01-02T00:00:00.000Z");
    expect(waitUntil({ until: "2025-01-01T00:00:00Z" }, now).toISOString()).toBe("2025-01-01T00:00:00.000Z");
    expect(waitUntil({ for: "1h", until: "2026-01-01T00:30:00Z" }, now).toISOString()).toBe("2026-01-01T01:00:00.000Z");
    expect(waitUntil({}, now).getTime()).toBe(now);
  });

  test("what the data schema cannot say is found with its path", () => {
    expect(waitStepProblem("wait", { for: `${MAX_WAIT_MS / 86_400_000 + 1}d` })?.path).toBe("/for");
    expect(waitStepProblem("wait", { for: "365d" })).toBeNull();
    expect(waitStepProblem("wait", { until: "not a time" })?.path).toBe("/until");
    expect(waitStepProblem("wait", { until: new Date(Date.now() + 2 * MAX_WAIT_MS).toISOString() })?.path).toBe("/until");
    expect(waitStepProblem("signal", { schema: { type: "nope" } })?.path).toBe("/schema");
    expect(waitStepProblem("signal", { schema: { type: "object" } })).toBeNull();
  });
});
