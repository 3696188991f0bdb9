import { hierarchy, tree } from "d3-hierarchy";
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
  /** A graph flow's job: its key, and the keys of the jobs it depends on. */
  key?: string;
  dependsOn?: string[];
  /** A job added while the flow ran: the key of the job that added it. */
  spawnedBy?: string;
  /** Why the job waits (a parked step or join, a hold for dependencies or a per-key limit), as views say it. */
  waitingFor?: { reason: string; key?: string; until?: string; keys?: string[] };
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
  /** A definition's run: its name and version, and the schedule or published event that started it. */
  definition?: { name: string; version: number };
  scheduleId?: string;
  eventId?: string;
  /** A tree flow's root; a graph flow has `jobs` instead. */
  root?: JobNode;
  jobs?: import("./graph-layout").GraphJob[];
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
 * A job as one event leaves it: `job.updated` carries status, attempts, result and error, and
 * `waitingFor` while the job waits (an event without it: nothing holds the job any more);
 * `job.log` the new log lines; `job.progress` the latest progress. A value the log cut short
 * (`{ truncated: true }`) keeps what the page had, since GET has the whole of it. Null when the
 * event is not about a job's own state.
 */
export function withJobEvent<J extends Pick<JobNode, "status" | "jobId" | "attemptsMade" | "result" | "error" | "updatedAt" | "progress" | "log" | "waitingFor">>(
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
      waitingFor: d.waitingFor && typeof d.waitingFor === "object" ? d.waitingFor : undefined,
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
  /** `spawn`: from a job to a job it added while it ran (not a dependency). */
  edges: { from: string; to: string; points: { x: number; y: number }[]; kind?: "spawn" }[];
}

/** Space between siblings, and between a parent's row and its children's (px). */
const GAP_X = 16;
const GAP_Y = 36;
const MARGIN = 8;

/**
 * Top-down tidy tree (d3-hierarchy's Reingold–Tilford, linear time); computed once per flow, since
 * statuses do not move nodes. A flow is a tree, not a general graph: a layered graph layout
 * (dagre) spent 400–500 ms of one main-thread task on a 1,000-job flow, this about 5 ms.
 * Edges are elbows: down from the parent, across, down into the child.
 */
export function layoutTree(jobs: Map<string, FlatJob>): Layout {
  // Measured under its own name, so a bench can tell the layout from the drawing (bench/flow-page.ts).
  const start = performance.now();
  const top = [...jobs.values()].find((j) => j.parentId === null);
  if (!top) return { width: 0, height: 0, nodes: new Map(), edges: [] };
  const root = hierarchy(top, (j) => j.childIds.flatMap((id) => jobs.get(id) ?? []));
  // Cousins a little further apart than siblings, so each parent's children read as a group.
  const laid = tree<FlatJob>()
    .nodeSize([NODE_W + GAP_X, NODE_H + GAP_Y])
    .separation((a, b) => (a.parent === b.parent ? 1 : 1.25))(root);
  let minX = Infinity;
  let maxX = -Infinity;
  let maxY = 0;
  laid.each((n) => {
    minX = Math.min(minX, n.x);
    maxX = Math.max(maxX, n.x);
    maxY = Math.max(maxY, n.y);
  });
  // d3 gives node centres (x) and row tops (y) around the root at 0; the SVG wants top-left corners from the margin.
  const left = (x: number) => x - minX + MARGIN;
  const nodes = new Map<string, { x: number; y: number }>();
  const edges: Layout["edges"] = [];
  laid.each((n) => {
    nodes.set(n.data.id, { x: left(n.x), y: n.y + MARGIN });
    if (!n.parent) return;
    const px = left(n.parent.x) + NODE_W / 2;
    const cx = left(n.x) + NODE_W / 2;
    const mid = n.y + MARGIN - GAP_Y / 2;
    edges.push({
      from: n.parent.data.id,
      to: n.data.id,
      points: [{ x: px, y: n.parent.y + MARGIN + NODE_H }, { x: px, y: mid }, { x: cx, y: mid }, { x: cx, y: n.y + MARGIN }],
    });
  });
  performance.measure("flowd:layout", { start });
  return { width: Math.ceil(maxX - minX + NODE_W + 2 * MARGIN), height: Math.ceil(maxY + NODE_H + 2 * MARGIN), nodes, edges };
}

/** Counts by status, for the flow's progress line. */
export function statusCounts(jobs: Iterable<FlatJob>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of jobs) out[j.status] = (out[j.status] ?? 0) + 1;
  return out;
}
