import { graphlib, layout as dagreLayout } from "@dagrejs/dagre";
import { NODE_H, NODE_W, type FlatJob, type Layout } from "./tree";

/** A graph flow's job as GET /v1/flows/:id answers it: a job view with its key and the keys it depends on. */
export interface GraphJob extends Omit<FlatJob, "parentId" | "childIds" | "depth" | "key" | "dependsOn"> {
  key: string;
  dependsOn: string[];
}

/** The edges drawn: one per dependency, and one from a job to each job it added (unless that one depends on it). */
function edgesOf(graph: Pick<GraphJob, "key" | "dependsOn" | "spawnedBy">[]): { from: string; to: string; kind?: "spawn" }[] {
  const out: { from: string; to: string; kind?: "spawn" }[] = [];
  for (const j of graph) {
    for (const k of j.dependsOn) out.push({ from: k, to: j.key });
    if (j.spawnedBy && !j.dependsOn.includes(j.spawnedBy)) out.push({ from: j.spawnedBy, to: j.key, kind: "spawn" });
  }
  return out;
}

/**
 * A graph flow's jobs as the page's rows: no parents or children (a graph job has dependencies
 * instead), each at its layer (1 + its longest chain of dependencies), so the tree's panel and
 * counts work on them unchanged. Rows keep their key and the keys they depend on.
 */
export function flattenGraph(jobs: GraphJob[]): Map<string, FlatJob> {
  const byKey = new Map(jobs.map((j) => [j.key, j]));
  const layer = new Map<string, number>();
  const layerOf = (j: GraphJob): number => {
    const known = layer.get(j.key);
    if (known !== undefined) return known;
    layer.set(j.key, 0); // the server refuses cycles; this only guards the recursion
    const l = j.dependsOn.reduce((m, k) => Math.max(m, byKey.has(k) ? layerOf(byKey.get(k)!) + 1 : 0), 0);
    layer.set(j.key, l);
    return l;
  };
  const out = new Map<string, FlatJob>();
  for (const j of jobs) out.set(j.id, { ...j, parentId: null, childIds: [], depth: layerOf(j) });
  return out;
}

const GAP_X = 24;
const GAP_Y = 44;
const MARGIN = 8;

/**
 * Up to this many jobs plus edges, dagre orders each layer itself. Past it, its ordering is too slow
 * for a page: its sweeps repeat until four in a row bring nothing (over a minute on 1,000 jobs and
 * 3,000 edges), and even with them off, building its per-layer graphs took 95% of a 1.7 s layout.
 * Bigger graphs are ordered by `orderLayers` through dagre's `customOrder` hook, and dagre does the
 * rest (ranks, coordinates, edge routes) as for any graph.
 */
export const FULL_ORDER_LIMIT = 600;

/** Down and up sweeps `orderLayers` makes; the best order seen (fewest crossings) is kept. */
const SWEEPS = 6;

type DagreGraph = InstanceType<typeof graphlib.Graph>;

/**
 * The Sugiyama ordering step in linear time per sweep: layers start in depth-first order (as
 * dagre's own start), then each sweep sorts every layer by the mean position of its neighbours in
 * the layer before it (the barycentre heuristic), alternately downwards and upwards. A fixed
 * number of sweeps, each O(nodes + edges); crossings are counted per sweep to keep the best.
 * Works on dagre's graph at its ordering step, where every edge spans one rank (long edges have
 * been split by dummy nodes), and leaves `order` on every node as dagre expects.
 */
export function orderLayers(g: DagreGraph): void {
  const rankOf = (v: string) => (g.node(v) as { rank: number }).rank;
  const all = g.nodes();
  const maxRank = all.reduce((m, v) => Math.max(m, rankOf(v)), 0);
  const layers: string[][] = Array.from({ length: maxRank + 1 }, () => []);
  const seen = new Set<string>();
  const byRank = [...all].sort((a, b) => rankOf(a) - rankOf(b));
  for (const start of byRank) {
    if (seen.has(start)) continue;
    const stack = [start];
    while (stack.length) {
      const v = stack.pop()!;
      if (seen.has(v)) continue;
      seen.add(v);
      layers[rankOf(v)]!.push(v);
      const next = (g.successors(v) ?? []) as string[];
      for (let i = next.length - 1; i >= 0; i--) if (!seen.has(next[i]!)) stack.push(next[i]!);
    }
  }
  const pos = new Map<string, number>();
  const index = () => layers.forEach((layer) => layer.forEach((v, i) => pos.set(v, i)));
  index();
  const up = new Map(all.map((v) => [v, (g.predecessors(v) ?? []) as string[]]));
  const down = new Map(all.map((v) => [v, (g.successors(v) ?? []) as string[]]));
  let best = layers.map((l) => [...l]);
  let fewest = crossings(layers, down, pos);
  for (let sweep = 0; sweep < SWEEPS && fewest > 0; sweep++) {
    const downwards = sweep % 2 === 0;
    const neighbours = downwards ? up : down;
    const order = downwards ? layers.keys() : [...layers.keys()].reverse();
    for (const r of order) {
      const layer = layers[r]!;
      // A node with no neighbour on that side keeps its place.
      const bary = new Map(
        layer.map((v, i) => {
          const ns = neighbours.get(v)!;
          return [v, ns.length ? ns.reduce((sum, n) => sum + pos.get(n)!, 0) / ns.length : i] as const;
        }),
      );
      layer.sort((a, b) => bary.get(a)! - bary.get(b)!);
      layer.forEach((v, i) => pos.set(v, i));
    }
    const c = crossings(layers, down, pos);
    if (c < fewest) (fewest = c), (best = layers.map((l) => [...l]));
  }
  best.forEach((layer) => layer.forEach((v, i) => ((g.node(v) as { order: number }).order = i)));
}

/** Edge crossings between each pair of adjacent layers: inversions of the lower ends, counted with a Fenwick tree. */
function crossings(layers: string[][], down: Map<string, string[]>, pos: Map<string, number>): number {
  let total = 0;
  for (let r = 0; r + 1 < layers.length; r++) {
    const size = layers[r + 1]!.length;
    const tree = new Array<number>(size + 1).fill(0);
    let seen = 0;
    for (const v of layers[r]!) {
      const ends = down.get(v)!.map((w) => pos.get(w)!).sort((a, b) => a - b);
      // Each end crosses every edge seen so far (from nodes further left) that lands right of it.
      for (const e of ends) {
        let atOrLeft = 0;
        for (let i = e + 1; i > 0; i -= i & -i) atOrLeft += tree[i]!;
        total += seen - atOrLeft;
      }
      for (const e of ends) {
        for (let i = e + 1; i <= size; i += i & -i) tree[i]!++;
        seen++;
      }
    }
  }
  return total;
}

/**
 * A layered DAG drawing (dagre, the Sugiyama method: layers, fewer crossings, then coordinates),
 * top-down, dependencies above their dependents. Ranks come from the longest path (network simplex,
 * dagre's default, spent minutes on 1,000 jobs and 3,000 edges). Computed once per set of jobs:
 * statuses never move a node. Edges are dagre's routes through the layers, from the bottom of a
 * dependency to the top of its dependent.
 */
export function layoutGraph(jobs: Map<string, FlatJob>, graph: GraphJob[]): Layout {
  const start = performance.now();
  const idOf = new Map(graph.map((g) => [g.key, g.id]));
  const g = new graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: GAP_X, ranksep: GAP_Y, edgesep: 12, marginx: MARGIN, marginy: MARGIN, ranker: "longest-path" });
  g.setDefaultEdgeLabel(() => ({}));
  for (const id of jobs.keys()) g.setNode(id, { width: NODE_W, height: NODE_H });
  let edgeCount = 0;
  const spawn = new Set<string>();
  for (const e of edgesOf(graph)) {
    const from = idOf.get(e.from);
    const to = idOf.get(e.to);
    if (!from || !to || !jobs.has(from) || !jobs.has(to)) continue;
    g.setEdge(from, to);
    edgeCount++;
    if (e.kind) spawn.add(`${from}>${to}`);
  }
  dagreLayout(g, jobs.size + edgeCount > FULL_ORDER_LIMIT ? { customOrder: (graph) => orderLayers(graph) } : {});
  const nodes = new Map<string, { x: number; y: number }>();
  let width = 0;
  let height = 0;
  for (const id of jobs.keys()) {
    const n = g.node(id) as { x: number; y: number };
    // dagre gives centres; the drawing wants top-left corners.
    const pos = { x: Math.round(n.x - NODE_W / 2), y: Math.round(n.y - NODE_H / 2) };
    nodes.set(id, pos);
    width = Math.max(width, pos.x + NODE_W + MARGIN);
    height = Math.max(height, pos.y + NODE_H + MARGIN);
  }
  const routes = g.edges().map((e) => ({
    from: e.v,
    to: e.w,
    route: ((g.edge(e) as { points?: { x: number; y: number }[] }).points ?? []).slice(1, -1).map((p) => ({ x: Math.round(p.x), y: Math.round(p.y) })),
  }));
  // Edges leave a dependency's bottom and enter a dependent's top spread along its width, in the
  // order of where they come from, so a join's arrows do not all land on one point.
  const ends = (side: "from" | "to") => {
    const out = new Map<(typeof routes)[number], number>();
    const byNode = new Map<string, typeof routes>();
    for (const r of routes) byNode.set(r[side], [...(byNode.get(r[side]) ?? []), r]);
    for (const [id, list] of byNode) {
      const x0 = nodes.get(id)!.x;
      const toward = (r: (typeof routes)[number]) => (side === "to" ? r.route.at(-1) ?? nodes.get(r.from)! : r.route[0] ?? nodes.get(r.to)!).x;
      list.sort((p, q) => toward(p) - toward(q));
      const span = Math.min(NODE_W - 24, 24 * (list.length - 1));
      list.forEach((r, i) => out.set(r, Math.round(x0 + NODE_W / 2 - span / 2 + (list.length > 1 ? (span * i) / (list.length - 1) : 0))));
    }
    return out;
  };
  const starts = ends("from");
  const stops = ends("to");
  const edges: Layout["edges"] = routes.map((r) => {
    const points = [{ x: starts.get(r)!, y: nodes.get(r.from)!.y + NODE_H }, ...r.route, { x: stops.get(r)!, y: nodes.get(r.to)!.y }];
    for (const p of points) width = Math.max(width, p.x + MARGIN);
    return spawn.has(`${r.from}>${r.to}`) ? { from: r.from, to: r.to, points, kind: "spawn" as const } : { from: r.from, to: r.to, points };
  });
  performance.measure("flowd:layout", { start });
  return { width: Math.ceil(width), height: Math.ceil(height), nodes, edges };
}
