import dagre from "@dagrejs/dagre";
import type { LiveEvent } from "./live";

export interface JobNode {
  id: string;
  jobId: string;
  name: string;
  queueName: string;
  status: string;
  data: Record<string, unknown>;
  opts: Record<string, unknown>;
  result: unknown;
  error: { message: string; stack?: string; attemptsMade?: number } | null;
  attemptsMade: number;
  createdAt: string;
  updatedAt: string;
  children: JobNode[];
}
export interface FlowView {
  id: string;
  name: string;
  status: string;
  jobCount: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  root: JobNode;
}

export interface FlatJob extends Omit<JobNode, "children"> {
  parentId: string | null;
  childIds: string[];
  depth: number;
}

/** The tree as rows by id, children in order: what events update in place. */
export function flatten(root: JobNode): Map<string, FlatJob> {
  const out = new Map<string, FlatJob>();
  const stack: { node: JobNode; parentId: string | null; depth: number }[] = [{ node: root, parentId: null, depth: 0 }];
  while (stack.length) {
    const { node, parentId, depth } = stack.pop()!;
    const { children, ...rest } = node;
    out.set(node.id, { ...rest, parentId, childIds: children.map((c) => c.id), depth });
    for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i]!, parentId: node.id, depth: depth + 1 });
  }
  return out;
}

/**
 * Applies one `job.updated` to its row, returning the row's new value (or null when the event is
 * about no job here). The event carries status, attempts, result and error; a result or error the
 * log cut short (`{ truncated: true }`) keeps what the page had, since GET has the whole of it.
 */
export function applyJobEvent(jobs: Map<string, FlatJob>, e: LiveEvent): FlatJob | null {
  if (e.event !== "job.updated" || !e.jobId) return null;
  const row = jobs.get(e.jobId);
  if (!row) return null;
  const d = e.data ?? {};
  const truncated = (v: any) => v && typeof v === "object" && v.truncated === true;
  const next: FlatJob = {
    ...row,
    status: e.status ?? row.status,
    jobId: d.jobId ?? row.jobId,
    attemptsMade: typeof d.attemptsMade === "number" ? d.attemptsMade : row.attemptsMade,
    result: "result" in d && !truncated(d.result) ? d.result : row.result,
    error: "error" in d && !truncated(d.error) ? d.error : row.error,
    updatedAt: e.at,
  };
  jobs.set(e.jobId, next);
  return next;
}

/** `flow.completed` and the like: the flow's new status, or null for other events. */
export function flowStatusOf(e: LiveEvent): string | null {
  const m = /^flow\.(completed|failed|cancelled)$/.exec(e.event);
  return m ? m[1]! : null;
}

export const NODE_W = 168;
export const NODE_H = 48;

export interface Layout {
  width: number;
  height: number;
  nodes: Map<string, { x: number; y: number }>;
  edges: { from: string; to: string; points: { x: number; y: number }[] }[];
}

/** Top-down layered layout (dagre); computed once per flow, since statuses do not move nodes. */
export function layoutTree(jobs: Map<string, FlatJob>): Layout {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 16, ranksep: 36, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const j of jobs.values()) g.setNode(j.id, { width: NODE_W, height: NODE_H });
  for (const j of jobs.values()) for (const c of j.childIds) g.setEdge(j.id, c);
  dagre.layout(g);
  const nodes = new Map<string, { x: number; y: number }>();
  for (const id of g.nodes()) {
    const n = g.node(id) as { x: number; y: number };
    nodes.set(id, { x: n.x - NODE_W / 2, y: n.y - NODE_H / 2 });
  }
  const edges = g.edges().map((e) => ({ from: e.v, to: e.w, points: ((g.edge(e) as { points?: { x: number; y: number }[] }).points ?? []) }));
  const graph = g.graph() as { width?: number; height?: number };
  return { width: Math.ceil(graph.width ?? 0), height: Math.ceil(graph.height ?? 0), nodes, edges };
}

/** Counts by status, for the flow's progress line. */
export function statusCounts(jobs: Iterable<FlatJob>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of jobs) out[j.status] = (out[j.status] ?? 0) + 1;
  return out;
}
