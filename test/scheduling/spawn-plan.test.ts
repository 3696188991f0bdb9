import { describe, expect, test } from "bun:test";
import { planSpawn, type FlowKeyRow } from "../../src/scheduling/spawn-plan";
import type { InvalidInput } from "../../src/errors";

/** The checks of a spawn against the flow as it is: pure, so every rule is one call. */
const config = { flowQueues: ["flows"], externalQueues: [], maxFlowJobs: 6 };
const row = (key: string, status = "completed", extra: Partial<FlowKeyRow> = {}): FlowKeyRow => ({
  id: `id-${key}`,
  jobId: `id-${key}`,
  key,
  status,
  opts: {},
  depth: 1,
  spawnedBy: null,
  ...extra,
});
const flow = [row("a"), row("me", "active"), row("run", "active", { depth: 2 })];

function refusal(fn: () => unknown): { code: string; paths: string[]; message: string } {
  try {
    fn();
  } catch (err) {
    const e = err as InvalidInput;
    return { code: e.code, paths: (e.details as { path: string }[]).map((d) => d.path), message: e.message };
  }
  throw new Error("not refused");
}

describe("planSpawn", () => {
  test("new jobs: ids, depth below their dependencies, held while one is not done, dependencies by row id", () => {
    const { added, again } = planSpawn(
      [
        { key: "x", name: "echo", dependsOn: ["a"] },
        { key: "y", name: "echo", dependsOn: ["run", "x"] },
        { key: "z", name: "echo" },
      ],
      flow,
      "id-me",
      config,
    );
    expect(again).toEqual([]);
    expect(added.map((p) => [p.key, p.depth, p.waitingFor])).toEqual([
      ["x", 2, null],
      ["y", 4, "dependencies"],
      ["z", 1, null],
    ]);
    expect(added[1]!.dependsOn).toEqual(["id-run", added[0]!.id]);
  });

  test("a key this spawner added before is its job again; another's key is a duplicate", () => {
    const mine = [...flow, row("k", "active", { spawnedBy: "id-me" })];
    const plan = planSpawn([{ key: "k", name: "echo" }, { key: "new", name: "echo" }], mine, "id-me", config);
    expect(plan.again.map((r) => r.key)).toEqual(["k"]);
    expect(plan.added.map((p) => p.key)).toEqual(["new"]);
    expect(refusal(() => planSpawn([{ key: "k", name: "echo" }], mine, "id-run", config))).toMatchObject({ code: "duplicate_key", paths: ["/jobs/0/key"] });
  });

  test("every refusal names its path", () => {
    const cases: [unknown[], string, string][] = [
      [[], "invalid_input", "/jobs"],
      [[{ key: "bad key", name: "echo" }], "invalid_key", "/jobs/0/key"],
      [[{ key: "x", name: "echo" }, { key: "x", name: "echo" }], "duplicate_key", "/jobs/1/key"],
      [[{ key: "a", name: "echo" }], "duplicate_key", "/jobs/0/key"],
      [[{ key: "x", name: "echo", dependsOn: ["x"] }], "invalid_dependency", "/jobs/0/dependsOn/0"],
      [[{ key: "x", name: "echo", dependsOn: ["a", "a"] }], "invalid_dependency", "/jobs/0/dependsOn/1"],
      [[{ key: "x", name: "echo", dependsOn: ["ghost"] }], "invalid_dependency", "/jobs/0/dependsOn/0"],
      [[{ key: "x", name: "echo", dependsOn: ["y"] }, { key: "y", name: "echo", dependsOn: ["x"] }], "dependency_cycle", "/jobs/1/dependsOn"],
      [[1, 2, 3, 4].map((i) => ({ key: `n${i}`, name: "echo" })), "too_many_jobs", "/jobs"],
      [[{ key: "x", name: "nope" }], "unknown_handler", "/jobs/0/name"],
      [[{ key: "x", name: "echo", queue: "elsewhere" }], "unknown_queue", "/jobs/0/queue"],
    ];
    for (const [jobs, code, path] of cases) {
      const got = refusal(() => planSpawn(jobs as never, flow, "id-me", config));
      expect({ jobs, code: got.code, paths: got.paths }).toEqual({ jobs, code, paths: [path] });
    }
  });

  test("a dependency that failed is refused unless its policy lets dependents run; cancelled always", () => {
    const big = { ...config, maxFlowJobs: 100 };
    const ended = [...flow, row("f", "failed"), row("soft", "failed", { opts: { ignoreDependencyOnFailure: true } }), row("gone", "cancelled")];
    expect(refusal(() => planSpawn([{ key: "x", name: "echo", dependsOn: ["f"] }], ended, "id-me", big)).message).toContain("'f', which failed");
    expect(refusal(() => planSpawn([{ key: "x", name: "echo", dependsOn: ["gone"] }], ended, "id-me", big)).message).toContain("was cancelled");
    expect(planSpawn([{ key: "x", name: "echo", dependsOn: ["soft"] }], ended, "id-me", big).added[0]!.waitingFor).toBeNull();
  });

  test("a cycle is named at its job's index in the request, also after jobs added before", () => {
    const mine = [...flow, row("k", "active", { spawnedBy: "id-me" })];
    const jobs = [{ key: "k", name: "echo" }, { key: "x", name: "echo", dependsOn: ["y"] }, { key: "y", name: "echo", dependsOn: ["x"] }];
    const got = refusal(() => planSpawn(jobs, mine, "id-me", config));
    expect(got.code).toBe("dependency_cycle");
    expect(got.paths).toEqual(["/jobs/2/dependsOn"]);
    expect(got.message).toContain("y → x → y");
  });

  test("edges: at most 10 per added job", () => {
    const many = Array.from({ length: 11 }, (_, i) => row(`d${i}`));
    const wide = { ...config, maxFlowJobs: 100 };
    expect(refusal(() => planSpawn([{ key: "x", name: "echo", dependsOn: many.map((r) => r.key!) }], many, "id-me", wide)).code).toBe("too_many_edges");
    expect(planSpawn([{ key: "x", name: "echo", dependsOn: many.slice(0, 10).map((r) => r.key!) }], many, "id-me", wide).added.length).toBe(1);
  });
});
