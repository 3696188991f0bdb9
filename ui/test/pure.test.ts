import { describe, expect, test } from "bun:test";
import { href, parseRoute } from "../lib/route";
import { duration, parseDataSearch, timing } from "../lib/format";
import { applyJobEvent, flatten, flowStatusOf, layoutTree, MAX_LOG_LINES, NODE_H, NODE_W, statusCounts, withJobEvent, type JobNode } from "../lib/tree";
import { flattenGraph, layoutGraph, type GraphJob } from "../lib/graph-layout";
import { canonicalPretty, sideBySide } from "../lib/json-diff";
import { buildInput, fieldsOf, initialValue } from "../lib/schema-form";

const job = (id: string, children: JobNode[] = [], status = "waiting"): JobNode => ({
  id, jobId: `b-${id}`, name: "echo", queueName: "flows", status, data: {}, opts: {}, result: null, error: null,
  attemptsMade: 0, createdAt: "2026-12-02T10:00:00.000Z", updatedAt: "2026-12-02T10:00:00.000Z", children,
});

describe("routes", () => {
  test("round trip", () => {
    for (const r of [
      { page: "overview" },
      { page: "flows", status: "failed", name: "inv", data: '{"a":1}' },
      { page: "flow", id: "c0abc" },
      { page: "jobs" },
      { page: "job", id: "x" },
      { page: "schedules" },
      { page: "webhooks" },
      { page: "handlers" },
      { page: "definitions", event: "c0ev" },
      { page: "definition", name: "nightly-etl", version: "2" },
      { page: "definition", name: "a:b.c" },
    ] as const)
      expect(parseRoute(href(r as never))).toEqual(
        r.page === "definitions" || r.page === "definition"
          ? ({ event: undefined, version: undefined, ...r } as never)
          : ({ status: undefined, name: undefined, data: undefined, ...r } as never),
      );
    expect(parseRoute("#/nope/1")).toEqual({ page: "missing", path: "/nope/1" });
    expect(parseRoute("")).toEqual({ page: "overview" });
  });

  test("a malformed percent escape is a missing page, not an exception (which left the page blank)", () => {
    for (const hash of ["#/flows/%", "#/jobs/%E0%A4%A", "#/flows/%zz", "#/%"])
      expect(parseRoute(hash)).toEqual({ page: "missing", path: hash.slice(1) });
    expect(parseRoute("#/flows/a%20b")).toEqual({ page: "flow", id: "a b" });
  });
});

describe("data search box", () => {
  test("objects pass, everything else is explained", () => {
    expect(parseDataSearch("")).toEqual({ ok: true, value: undefined });
    expect(parseDataSearch(' {"customer": 42} ')).toEqual({ ok: true, value: '{"customer":42}' });
    for (const bad of ["{customer:1}", "[1]", "3", "null", '"x"']) expect(parseDataSearch(bad).ok).toBe(false);
  });
  test("durations", () => {
    expect(duration(250)).toBe("250 ms");
    expect(duration(61_000)).toBe("1 min 1 s");
    expect(duration(3_660_000)).toBe("1 h 1 min");
  });
});

describe("flow tree", () => {
  const tree = job("r", [job("a", [job("a1"), job("a2")]), job("b")]);
  test("flattens with parents, children and depth; lays out every node once", () => {
    const jobs = flatten(tree);
    expect([...jobs.keys()]).toEqual(["r", "a", "a1", "a2", "b"]);
    expect(jobs.get("a1")).toMatchObject({ parentId: "a", depth: 2 });
    expect(jobs.get("r")!.childIds).toEqual(["a", "b"]);
    const layout = layoutTree(jobs);
    expect(layout.nodes.size).toBe(5);
    expect(layout.edges).toHaveLength(4);
    // Top-down: a child sits below its parent.
    expect(layout.nodes.get("a1")!.y).toBeGreaterThan(layout.nodes.get("a")!.y);
    expect(layout.width).toBeGreaterThan(0);
  });
  test("job.updated replaces only its row; a truncated result keeps what the page had", () => {
    const jobs = flatten(tree);
    const before = jobs.get("b");
    const ev = { type: "event" as const, event: "job.updated", seq: 1, flowId: "f", jobId: "a", status: "completed", at: "2026-12-02T10:00:01.000Z", data: { attemptsMade: 1, result: { ok: 1 } } };
    expect(applyJobEvent(jobs, ev)).toMatchObject({ status: "completed", attemptsMade: 1, result: { ok: 1 } });
    expect(jobs.get("b")).toBe(before!);
    applyJobEvent(jobs, { ...ev, seq: 2, data: { result: { truncated: true, bytes: 9000 } } });
    expect(jobs.get("a")!.result).toEqual({ ok: 1 });
    expect(applyJobEvent(jobs, { ...ev, jobId: "zzz" })).toBeNull();
    expect(statusCounts(jobs.values())).toEqual({ waiting: 4, completed: 1 });
    expect(flowStatusOf({ ...ev, event: "flow.failed" })).toBe("failed");
    expect(flowStatusOf(ev)).toBeNull();
  });
  test("a 1,000-job tree lays out in well under a second", () => {
    const kids = (n: number, depth: number): JobNode[] =>
      depth === 0 ? [] : Array.from({ length: n }, (_, i) => job(`${depth}-${i}-${Math.random().toString(36).slice(2)}`, kids(n, depth - 1)));
    const big = job("root", kids(10, 3)); // 10 + 100 + 1000 + 1
    const jobs = flatten(big);
    expect(jobs.size).toBe(1111);
    const t0 = performance.now();
    layoutTree(jobs);
    const ms = performance.now() - t0;
    console.log(`layout of ${jobs.size} jobs: ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(3000);
  });
});

describe("flow graph", () => {
  const gjob = (key: string, dependsOn: string[] = []): GraphJob => {
    const { children: _, ...rest } = job(`id-${key}`);
    return { ...rest, key, dependsOn };
  };
  /** No two nodes share any pixel. */
  const overlaps = (nodes: Map<string, { x: number; y: number }>) => {
    const all = [...nodes.values()].sort((a, b) => a.y - b.y || a.x - b.x);
    let n = 0;
    for (let i = 0; i < all.length; i++)
      for (let j = i + 1; j < all.length && all[j]!.y < all[i]!.y + NODE_H; j++)
        if (Math.abs(all[j]!.x - all[i]!.x) < NODE_W) n++;
    return n;
  };

  test("a diamond: A above B and C side by side, D below both, one edge per dependency, down the page", () => {
    const graph = [gjob("A"), gjob("B", ["A"]), gjob("C", ["A"]), gjob("D", ["B", "C"])];
    const jobs = flattenGraph(graph);
    expect([...jobs.values()].map((j) => [j.key, j.depth])).toEqual([["A", 0], ["B", 1], ["C", 1], ["D", 2]]);
    const layout = layoutGraph(jobs, graph);
    const at = (k: string) => layout.nodes.get(`id-${k}`)!;
    expect(layout.nodes.size).toBe(4);
    expect(layout.edges.map((e) => `${e.from}>${e.to}`).sort()).toEqual(["id-A>id-B", "id-A>id-C", "id-B>id-D", "id-C>id-D"]);
    expect(at("B").y).toBeGreaterThan(at("A").y + NODE_H);
    expect(at("B").y).toBe(at("C").y);
    expect(at("D").y).toBeGreaterThan(at("B").y + NODE_H);
    expect(overlaps(layout.nodes)).toBe(0);
    // Each edge leaves its dependency's bottom and enters its dependent's top, inside the drawing.
    for (const e of layout.edges) {
      const from = layout.nodes.get(e.from)!;
      const to = layout.nodes.get(e.to)!;
      expect(e.points[0]!.y).toBe(from.y + NODE_H);
      expect(e.points[0]!.x > from.x && e.points[0]!.x < from.x + NODE_W).toBe(true);
      expect(e.points.at(-1)!.y).toBe(to.y);
      expect(e.points.at(-1)!.x > to.x && e.points.at(-1)!.x < to.x + NODE_W).toBe(true);
      for (const p of e.points) expect(p.x >= 0 && p.x <= layout.width && p.y >= 0 && p.y <= layout.height).toBe(true);
    }
    for (const p of layout.nodes.values()) expect(p.x + NODE_W <= layout.width && p.y + NODE_H <= layout.height).toBe(true);
    // The join's two arrows land apart, left one from the left dependency.
    const into = layout.edges.filter((e) => e.to === "id-D").map((e) => ({ from: e.from, x: e.points.at(-1)!.x }));
    expect(new Set(into.map((e) => e.x)).size).toBe(2);
    const left = at("B").x < at("C").x ? "id-B" : "id-C";
    expect(into.sort((a, b) => a.x - b.x)[0]!.from).toBe(left);
  });

  test("a 1,000-job graph with 2,700 edges lays out in well under a few seconds, nothing overlapping", () => {
    // 10 layers of 100; each job of a layer depends on 3 of the layer above, as bench graphs does.
    const graph: GraphJob[] = [];
    for (let l = 0; l < 10; l++)
      for (let i = 0; i < 100; i++) graph.push(gjob(`${l}-${i}`, l ? [...new Set([0, 1, 2].map((k) => `${l - 1}-${(i * 7 + k * 31) % 100}`))] : []));
    const jobs = flattenGraph(graph);
    const t0 = performance.now();
    const layout = layoutGraph(jobs, graph);
    const ms = performance.now() - t0;
    console.log(`layout of a ${jobs.size}-job graph with ${layout.edges.length} edges: ${ms.toFixed(0)} ms`);
    expect(layout.nodes.size).toBe(1000);
    expect(layout.edges).toHaveLength(2700);
    expect(overlaps(layout.nodes)).toBe(0);
    expect(ms).toBeLessThan(5000);
  });
});

describe("definition versions side by side", () => {
  test("keys in one order whatever order they were stored in", () => {
    expect(canonicalPretty({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe(canonicalPretty({ a: { c: null, d: [{ y: 2, z: 1 }] }, b: 1 }));
  });
  test("a changed value is a changed row, an added key a row on the right only, the rest the same on both sides", () => {
    const v1 = { input: { type: "object" }, flow: { root: { name: "echo", data: { a: 1 } } } };
    const v2 = { input: { type: "object" }, flow: { root: { name: "echo", data: { a: 2, b: 3 } } } };
    const rows = sideBySide(v1, v2);
    const changed = rows.filter((r) => r.kind !== "same");
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.some((r) => r.left?.includes('"a": 1') && r.right?.includes('"a": 2'))).toBe(true);
    expect(changed.some((r) => r.right?.includes('"b": 3'))).toBe(true);
    // Read down either side, the rows give back each version's text.
    expect(rows.flatMap((r) => (r.left === null ? [] : [r.left])).join("\n")).toBe(canonicalPretty(v1));
    expect(rows.flatMap((r) => (r.right === null ? [] : [r.right])).join("\n")).toBe(canonicalPretty(v2));
    expect(sideBySide(v1, v1).every((r) => r.kind === "same")).toBe(true);
  });
});

describe("a run form from an input schema", () => {
  const schema = {
    type: "object",
    required: ["customer", "plan"],
    properties: {
      customer: { type: "string", description: "Customer id" },
      seats: { type: "integer", default: 5 },
      ratio: { type: "number" },
      trial: { type: "boolean" },
      plan: { enum: ["basic", "pro"] },
      tags: { type: "array", items: { type: "string" } },
    },
  };
  test("simple properties are fields, anything else a JSON box; no object schema is one JSON box", () => {
    const fields = fieldsOf(schema)!;
    // Required first, then by name.
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ["customer", "string", true], ["plan", "enum", true], ["ratio", "number", false],
      ["seats", "integer", false], ["tags", "json", false], ["trial", "boolean", false],
    ]);
    expect(fields.map(initialValue)).toEqual(["", "", "", "5", "", "false"]);
    for (const none of [null, undefined, {}, { type: "string" }, { type: "object" }, [1]]) expect(fieldsOf(none)).toBeNull();
  });
  test("values are typed from the schema; empty optional fields are left out; bad values name their field", () => {
    const fields = fieldsOf(schema)!;
    expect(buildInput(fields, { customer: "c-1", seats: "7", ratio: "0.5", trial: "true", plan: "pro", tags: '["a"]' })).toEqual({
      ok: true, input: { customer: "c-1", seats: 7, ratio: 0.5, trial: true, plan: "pro", tags: ["a"] },
    });
    expect(buildInput(fields, { customer: "c-1", plan: "basic", trial: "false" })).toEqual({ ok: true, input: { customer: "c-1", plan: "basic", trial: false } });
    expect(buildInput(fields, { plan: "basic" })).toMatchObject({ ok: false, field: "customer" });
    expect(buildInput(fields, { customer: "c", plan: "basic", seats: "2.5" })).toMatchObject({ ok: false, field: "seats" });
    expect(buildInput(fields, { customer: "c", plan: "basic", tags: "[a" })).toMatchObject({ ok: false, field: "tags" });
  });
});

describe("a job's log and progress, live", () => {
  const job = { status: "active", jobId: "j", attemptsMade: 0, result: null, error: null, updatedAt: "2026-01-01T00:00:00.000Z" } as Parameters<typeof withJobEvent>[0];
  const at = "2026-01-01T00:00:01.000Z";
  const ev = (event: string, data: unknown) => ({ seq: 1, event, jobId: "j", at, data }) as never;

  test("job.log appends the new lines; past the cap they are counted as dropped, as the server does", () => {
    const first = withJobEvent(job, ev("job.log", { id: "j", lines: [{ at, line: "one" }] }))!;
    expect(first.log).toEqual({ lines: [{ at, line: "one" }], dropped: 0 });
    const many = Array.from({ length: MAX_LOG_LINES }, (_, i) => ({ at, line: `l${i}` }));
    const full = withJobEvent(first, ev("job.log", { id: "j", lines: many }))!;
    expect(full.log!.lines).toHaveLength(MAX_LOG_LINES);
    expect(full.log!.lines[0]!.line).toBe("one");
    expect(full.log!.dropped).toBe(1);
    // Lines cut short by the event log leave the view as it was (GET has them).
    expect(withJobEvent(first, ev("job.log", { id: "j", lines: { truncated: true, bytes: 9000 } }))).toEqual(first);
  });

  test("job.progress replaces the progress; job.updated keeps log and progress", () => {
    const p = withJobEvent(job, ev("job.progress", { id: "j", progress: 40 }))!;
    expect(p.progress).toBe(40);
    const done = withJobEvent(p, { seq: 2, event: "job.updated", jobId: "j", status: "completed", at, data: { result: 1 } } as never)!;
    expect(done).toMatchObject({ status: "completed", result: 1, progress: 40 });
    expect(withJobEvent(job, ev("flow.completed", {}))).toBeNull();
  });

  test("job.updated sets waitingFor while the job waits and clears it with an event that has none", () => {
    const parked = withJobEvent(job, { seq: 3, event: "job.updated", jobId: "j", status: "active", at, data: { waitingFor: { reason: "signal", key: "k" } } } as never)!;
    expect(parked.waitingFor).toEqual({ reason: "signal", key: "k" });
    const done = withJobEvent(parked, { seq: 4, event: "job.updated", jobId: "j", status: "completed", at, data: { result: 1 } } as never)!;
    expect(done.waitingFor).toBeUndefined();
  });
});

describe("timing", () => {
  test("percentiles read finer than durations, and a missing one is a dash", () => {
    expect([null, 0.4, 999.4, 1507, 12_345, 75_000].map(timing)).toEqual(["–", "0 ms", "999 ms", "1.51 s", "12.3 s", "1 min 15 s"]);
  });
});
