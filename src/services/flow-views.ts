import type { FlowJobRow, FlowRow } from "../db/queries/flows";
import { isWaitingReason, PARKED_WAIT_REASONS, shownUntil, type WaitingFor, type WaitingReason } from "../scheduling/waiting-for";

export interface JobError {
  message: string;
  /** Set for failures flowd names: `expired` (no start within opts.expireAfterMs; no attempt made), `timed_out` (a wait step's timeout), `rejected` (an approval step). */
  code?: string;
  stack?: string;
  attemptsMade: number;
}

export interface JobView {
  id: string;
  jobId: string;
  name: string;
  queueName: string;
  status: string;
  data: Record<string, unknown>;
  opts: Record<string, unknown>;
  result: unknown;
  error: JobError | null;
  attemptsMade: number;
  createdAt: string;
  updatedAt: string;
  /** An `http` task whose service answered 202: it waits for its callback until then. */
  callbackUntil?: string;
  /** A graph flow's job: its key in the flow. */
  key?: string;
  /** A parked wait step: what it waits for, and until when if its wait ends by itself; a job held for a per-key limit: which, and its key. */
  waitingFor?: WaitingFor;
}
/** A job of a graph flow: its view, with the keys of the jobs it depends on. */
export interface GraphJobView extends JobView {
  key: string;
  dependsOn: string[];
  /** Why it waits: `dependencies` (held out of Redis), `children` (parked on a join of jobs it added). */
  waitingFor?: WaitingFor;
  /** Added while the flow ran, by the job with this key (src/services/spawn.ts). */
  spawnedBy?: string;
}
export interface JobNodeView extends JobView {
  children: JobNodeView[];
}
export interface FlowSummary {
  id: string;
  name: string;
  status: string;
  jobCount: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** A definition's run: which version; and the schedule or published event that started it. */
  definition?: { name: string; version: number };
  scheduleId?: string;
  eventId?: string;
}
/** A tree flow has `root`; a graph flow has `jobs` (in the order given) instead. */
export type FlowView = FlowSummary & ({ root: JobNodeView; jobs?: never } | { jobs: GraphJobView[]; root?: never });

/**
 * Timestamps as ISO text. A new flow's rows all share one creation time, so the last answer is
 * kept: a 1,000-job flow's view formatted the same instant 2,000 times.
 */
let lastTime = NaN;
let lastIso = "";
function iso(d: Date): string {
  const time = d.getTime();
  if (time !== lastTime) {
    lastTime = time;
    lastIso = d.toISOString();
  }
  return lastIso;
}

export function jobView(r: {
  id: string; jobId: string; name: string; queueName: string; status: string; data: unknown; opts: unknown;
  result: unknown; error: unknown; attemptsMade: number; createdAt: Date; updatedAt: Date; parkedUntil?: Date | null; key?: string | null;
  waitingFor?: string | null; concurrencyKeys?: string[] | null; rateKey?: string | null;
}): JobView {
  const view: JobView = {
    id: r.id,
    jobId: r.jobId,
    name: r.name,
    queueName: r.queueName,
    status: r.status,
    data: r.data as Record<string, unknown>,
    opts: r.opts as Record<string, unknown>,
    result: r.result ?? null,
    error: (r.error as JobError | null) ?? null,
    attemptsMade: r.attemptsMade,
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt),
  };
  if (r.parkedUntil && r.status === "active") {
    if (r.waitingFor && isWaitingReason(r.waitingFor)) {
      const until = shownUntil(r.parkedUntil);
      // A signal step's key is its data's: what POST /v1/signals names.
      const key = r.waitingFor === "signal" ? (r.data as { key?: unknown }).key : undefined;
      view.waitingFor = { reason: r.waitingFor, ...(typeof key === "string" ? { key } : {}), ...(until ? { until } : {}) };
    } else view.callbackUntil = r.parkedUntil.toISOString();
  }
  if (r.key) view.key = r.key;
  if (r.status === "pending" && r.waitingFor === "concurrency" && r.concurrencyKeys?.[0])
    view.waitingFor = { reason: "concurrency", key: r.concurrencyKeys[0] };
  if (r.status === "pending" && r.waitingFor === "rateLimit" && r.rateKey) view.waitingFor = { reason: "rateLimit", key: r.rateKey };
  return view;
}

export function flowSummary(f: FlowRow): FlowSummary {
  const summary: FlowSummary = {
    id: f.id,
    name: f.name,
    status: f.status,
    jobCount: f.jobCount,
    createdAt: f.createdAt.toISOString(),
    updatedAt: f.updatedAt.toISOString(),
    finishedAt: f.finishedAt?.toISOString() ?? null,
  };
  if (f.definition !== null && f.definition !== undefined) summary.definition = { name: f.definition, version: f.definitionVersion ?? 0 };
  if (f.scheduleId) summary.scheduleId = f.scheduleId;
  if (f.eventId) summary.eventId = f.eventId;
  return summary;
}

/** The flow with its jobs nested under their parents; siblings keep the order given (each row lists its children). */
export function flowView(f: FlowRow, rows: FlowJobRow[]): FlowView {
  if (f.graph) return { ...flowSummary(f), jobs: graphJobs(rows) };
  const nodes = new Map<string, JobNodeView>();
  for (const r of rows) nodes.set(r.id, Object.assign(jobView(r), { children: [] as JobNodeView[] }));
  for (const r of rows) {
    const node = nodes.get(r.id)!;
    for (const childId of r.children ?? []) {
      const child = nodes.get(childId);
      if (child) node.children.push(child);
    }
  }
  const root = nodes.get(f.rootId ?? "") ?? [...nodes.values()][0];
  if (!root) throw new Error(`flow ${f.id} has no jobs`);
  return { ...flowSummary(f), root };
}

/** Reasons jobView tells, with their key or until (wait steps, per-key limits); graphJobs tells the others. */
const TOLD_BY_JOB_VIEW: ReadonlySet<string> = new Set<string>([...PARKED_WAIT_REASONS, "concurrency", "rateLimit"]);

/** A graph flow's jobs in the order they were given (their ids are time-ordered), dependencies by key. */
function graphJobs(rows: FlowJobRow[]): GraphJobView[] {
  const keyOf = new Map(rows.map((r) => [r.id, r.key ?? r.id]));
  return [...rows]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((r) => {
      const view: GraphJobView = { ...jobView(r), key: r.key ?? r.id, dependsOn: (r.dependsOn ?? []).map((id) => keyOf.get(id) ?? id) };
      // A job parked on a join is no http task waiting for a callback: its park's deadline is only when it looks again.
      if (r.waitsOn) delete view.callbackUntil;
      // Jobs held for their dependencies and joins (with the keys they wait for) are told here.
      if (r.waitingFor && !TOLD_BY_JOB_VIEW.has(r.waitingFor))
        view.waitingFor = { reason: r.waitingFor as WaitingReason, ...(r.waitingFor === "children" && r.waitsOn ? { keys: r.waitsOn.map((id) => keyOf.get(id) ?? id) } : {}) };
      if (r.spawnedBy) view.spawnedBy = keyOf.get(r.spawnedBy) ?? r.spawnedBy;
      return view;
    });
}
