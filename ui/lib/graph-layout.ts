import { NODE_H, NODE_W, type FlatJob, type Layout } from "./tree";

/** A graph flow's job as GET /v1/flows/:id answers it: a job view with its key and the keys it depends on. */
export interface GraphJob extends Omit<FlatJob, "parentId" | "childIds" | "depth"> {
  key: string;
  dependsOn: string[];
}

/**
 * A graph flow's jobs as the page's rows: no parents or children (a graph job has dependencies
 * instead), each at its layer (1 + its longest chain of dependencies), so the tree's panel and
 * counts work on them unchanged.
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

const GAP_X = 16;
const GAP_Y = 36;
const MARGIN = 8;

/**
 * A plain layered drawing: one row per layer, jobs side by side in the order given, an elbow from
 * each dependency down to its dependent. Not a crossing-minimising DAG layout (that is still to
 * come); it shows every job and every dependency.
 */
export function layoutGraph(jobs: Map<string, FlatJob>, graph: GraphJob[]): Layout {
  const idOf = new Map(graph.map((g) => [g.key, g.id]));
  const perLayer = new Map<number, number>();
  const nodes = new Map<string, { x: number; y: number }>();
  let width = 0;
  let height = 0;
  for (const j of jobs.values()) {
    const i = perLayer.get(j.depth) ?? 0;
    perLayer.set(j.depth, i + 1);
    const pos = { x: MARGIN + i * (NODE_W + GAP_X), y: MARGIN + j.depth * (NODE_H + GAP_Y) };
    nodes.set(j.id, pos);
    width = Math.max(width, pos.x + NODE_W + MARGIN);
    height = Math.max(height, pos.y + NODE_H + MARGIN);
  }
  const edges: Layout["edges"] = [];
  for (const g of graph)
    for (const key of g.dependsOn) {
      const from = idOf.get(key);
      const a = from ? nodes.get(from) : undefined;
      const b = nodes.get(g.id);
      if (!from || !a || !b) continue;
      const mid = b.y - GAP_Y / 2;
      const ax = a.x + NODE_W / 2;
      const bx = b.x + NODE_W / 2;
      edges.push({ from, to: g.id, points: [{ x: ax, y: a.y + NODE_H }, { x: ax, y: mid }, { x: bx, y: mid }, { x: bx, y: b.y }] });
    }
  return { width, height, nodes, edges };
}
