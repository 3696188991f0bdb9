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
  /** What the handler reported: its last progress, and its kept log lines. */
  progress?: unknown;
  log?: JobLog;
  children: JobNode[];
}

export interface JobLog {
  lines: { at: string; line: string }[];
  dropped: number;
}

/** Log lines a page keeps per job, as the server does: later ones are counted as dropped. */
export const MAX_LOG_LINES = 1_000;
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

const truncated = (v: unknown) => !!v && typeof v === "object" && (v as { truncated?: unknown }).truncated === true;

/**
 * A job as one event leaves it: `job.updated` carries status, attempts, result and error;
 * `job.log` the new log lines; `job.progress` the latest progress. A value the log cut short
 * (`{ truncated: true }`) keeps what the page had, since GET has the whole of it. Null when the
 * event is not about a job's own state.
 */
export function withJobEvent<J extends Pick<JobNode, "status" | "jobId" | "attemptsMade" | "result" | "error" | "updatedAt" | "progress" | "log">>(
  job: J,
  e: LiveEvent,
): J | null {
  const d = e.data ?? {};
  if (e.event === "job.updated")
    return {
      ...job,
      status: e.status ?? job.status,
      jobId: d.jobId ?? job.jobId,
      attemptsMade: typeof d.attemptsMade === "number" ? d.attemptsMade : job.attemptsMade,
      result: "result" in d && !truncated(d.result) ? d.result : job.result,
      error: "error" in d && !truncated(d.error) ? d.error : job.error,
      updatedAt: e.at,
    };
  if (e.event === "job.progress") return truncated(d.progress) ? job : { ...job, progress: d.progress };
  if (e.event === "job.log") {
    if (!Array.isArray(d.lines)) return job;
    const log = job.log ?? { lines: [], dropped: 0 };
    const lines = [...log.lines, ...d.lines];
    const over = Math.max(0, lines.length - MAX_LOG_LINES);
    return { ...job, log: { lines: lines.slice(0, lines.length - over), dropped: log.dropped + over } };
  }
  return null;
}

/** Applies one job event to its row, returning the row's new value (or null when it is about no job here). */
export function applyJobEvent(jobs: Map<string, FlatJob>, e: LiveEvent): FlatJob | null {
  const row = e.jobId ? jobs.get(e.jobId) : undefined;
  const next = row ? withJobEvent(row, e) : null;
  if (next) jobs.set(e.jobId!, next);
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
