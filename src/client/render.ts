/** A flow drawn for a terminal: its tree (or graph), a progress bar and the failed jobs' errors. */
import { formatDuration, paintStatus, type Palette } from "./output";

export interface JobLike {
  id: string;
  jobId: string;
  name: string;
  status: string;
  key?: string;
  dependsOn?: string[];
  error?: { message: string; attemptsMade?: number } | null;
  children?: JobLike[];
  updatedAt?: string;
}
export interface FlowLike {
  id: string;
  name: string;
  status: string;
  jobCount: number;
  createdAt: string;
  finishedAt?: string | null;
  root?: JobLike;
  jobs?: JobLike[];
}

const FINISHED = new Set(["completed", "failed", "cancelled"]);
export const isFinishedStatus = (s: string) => FINISHED.has(s);

const SYMBOL: Record<string, string> = { completed: "✓", failed: "✗", cancelled: "⊘", active: "●" };
const symbol = (p: Palette, status: string) => {
  const s = SYMBOL[status] ?? "○";
  return status === "completed" ? p.green(s) : status === "failed" ? p.red(s) : status === "active" ? p.cyan(s) : status === "cancelled" ? p.grey(s) : p.yellow(s);
};

/** Every job of a flow view, parents before children (a tree) or in the order given (a graph). */
export function jobsOf(flow: FlowLike): JobLike[] {
  if (flow.jobs) return flow.jobs;
  const out: JobLike[] = [];
  const walk = (j: JobLike) => {
    out.push(j);
    for (const c of j.children ?? []) walk(c);
  };
  if (flow.root) walk(flow.root);
  return out;
}

function jobLine(p: Palette, j: JobLike, status: string): string {
  const label = j.key ? `${p.bold(j.key)} ${p.dim(j.name)}` : p.bold(j.name);
  return `${symbol(p, status)} ${label} ${paintStatus(p, status)} ${p.grey(j.id)}`;
}

/** The tree with box-drawing branches, or a graph's jobs each with what it waits for. */
export function treeLines(flow: FlowLike, statusOf: (j: JobLike) => string, p: Palette): string[] {
  const lines: string[] = [];
  if (flow.jobs) {
    for (const j of flow.jobs) {
      const deps = j.dependsOn?.length ? p.dim(` ← ${j.dependsOn.join(", ")}`) : "";
      lines.push(`${jobLine(p, j, statusOf(j))}${deps}`);
    }
    return lines;
  }
  const walk = (j: JobLike, prefix: string, last: boolean, top: boolean) => {
    lines.push(`${top ? "" : prefix + (last ? "└─ " : "├─ ")}${jobLine(p, j, statusOf(j))}`);
    const kids = j.children ?? [];
    const next = top ? "" : prefix + (last ? "   " : "│  ");
    kids.forEach((c, i) => walk(c, next, i === kids.length - 1, false));
  };
  if (flow.root) walk(flow.root, "", true, true);
  return lines;
}

/** `[██████░░░░] 6/10 jobs  60%  2.0 jobs/s  elapsed 3.0s` */
export function progressLine(done: number, total: number, elapsedMs: number, p: Palette, width = 30): string {
  const ratio = total > 0 ? done / total : 0;
  const filled = Math.round(ratio * width);
  const bar = p.green("█".repeat(filled)) + p.grey("░".repeat(width - filled));
  const rate = elapsedMs > 0 ? (done / (elapsedMs / 1000)).toFixed(1) : "0.0";
  return `[${bar}] ${done}/${total} jobs  ${Math.round(ratio * 100)}%  ${rate} jobs/s  elapsed ${formatDuration(elapsedMs)}`;
}

/** The failed jobs' errors, one line each (the first line of the message). */
export function errorLines(jobs: JobLike[], errorOf: (j: JobLike) => JobLike["error"], statusOf: (j: JobLike) => string, p: Palette): string[] {
  return jobs
    .filter((j) => statusOf(j) === "failed" && errorOf(j))
    .map((j) => `${p.red("✗")} ${j.key ?? j.name} ${p.grey(j.id)}: ${p.red(String(errorOf(j)!.message).split("\n")[0]!)}`);
}

/** The whole frame: header, tree (cut to `maxTreeLines`), progress, errors. */
export function flowFrame(
  flow: FlowLike,
  state: { statusOf: (j: JobLike) => string; errorOf: (j: JobLike) => JobLike["error"]; flowStatus: string; elapsedMs: number; note?: string },
  p: Palette,
  maxTreeLines = Infinity,
): string[] {
  const jobs = jobsOf(flow);
  const done = jobs.filter((j) => isFinishedStatus(state.statusOf(j))).length;
  const tree = treeLines(flow, state.statusOf, p);
  const shown = tree.length > maxTreeLines ? [...tree.slice(0, Math.max(1, maxTreeLines - 1)), p.dim(`… ${tree.length - maxTreeLines + 1} more jobs`)] : tree;
  const header = `${p.bold("flow")} ${flow.id}  ${p.bold(flow.name)}  ${paintStatus(p, state.flowStatus)}${state.note ? "  " + p.yellow(state.note) : ""}`;
  const errors = errorLines(jobs, state.errorOf, state.statusOf, p);
  return [header, ...shown, "", progressLine(done, jobs.length, state.elapsedMs, p), ...(errors.length ? ["", ...errors.slice(0, 10)] : [])];
}
