import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

// The layers of src/, lowest first: a module imports only from its own layer or lower ones.
// cli → api | workers | client → services | scheduling → events | db | queues | handlers | net → everything at the base.
const LAYERS: [number, RegExp][] = [
  [4, /^(cli|main|dev)\.ts$/],
  [3, /^(api|workers|client)\//],
  [2, /^(services|scheduling)\//],
  [1, /^(events|db|handlers|net|embedded)\/|^(queues|readiness|lifecycle|metrics)\.ts$/],
  [0, /^[^/]+\.ts$/],
];
const SRC = join(import.meta.dir, "../../src");
const layerOf = (file: string) => LAYERS.find(([, re]) => re.test(file))![0];

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith(".ts") ? [relative(SRC, join(dir, d.name))] : [],
  );
}

/** Every file's imports of other src/ files: static, dynamic and type-only alike (types tie modules together too). */
function importGraph(): Map<string, string[]> {
  const files = new Set(sourceFiles());
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(SRC, file), "utf8");
    const specs = [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*"(\.[^"]+)"/g)].map((m) => m[1]!);
    const targets = specs.map((s) => normalize(join(dirname(file), s)).replace(/\.ts$/, "") + ".ts").filter((t) => files.has(t));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      if (state.get(t) === "open") found.push([...stack.slice(stack.indexOf(t)), t]);
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return found;
}

describe("the import graph of src/", () => {
  const graph = importGraph();

  test("has no circles", () => {
    // The graph is really read: every module, and the hundreds of imports between them.
    expect(graph.size).toBeGreaterThan(90);
    expect([...graph.values()].flat().length).toBeGreaterThan(300);
    expect(cycles(graph).map((c) => c.join(" → "))).toEqual([]);
  });

  test("never imports from a higher layer", () => {
    const upward = [...graph].flatMap(([from, tos]) => tos.filter((to) => layerOf(to) > layerOf(from)).map((to) => `${from} → ${to}`));
    expect(upward).toEqual([]);
  });

  test("the command-line client imports nothing of the server: it knows flowd only through the public API", () => {
    const reaching = [...graph].flatMap(([from, tos]) => (from.startsWith("client/") ? tos.filter((to) => !to.startsWith("client/")).map((to) => `${from} → ${to}`) : []));
    expect([...graph.keys()].filter((f) => f.startsWith("client/")).length).toBeGreaterThan(5);
    expect(reaching).toEqual([]);
  });
});
