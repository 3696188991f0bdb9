/** The read-only commands' text: lists, a flow, a job, an operation, and the registry tables. */
import { paintStatus, shortTime, table, type Palette } from "./output";
import { flowFrame, type FlowLike, type JobLike } from "./render";
import { filters, print, query, type Ctx } from "./context";

export async function list(ctx: Ctx, kind: "flows" | "jobs"): Promise<number> {
  const v = ctx.values as Record<string, string | undefined>;
  const page = await ctx.api().request("GET", `/v1/${kind}${query({ ...filters(ctx, kind), limit: v.limit, cursor: v.cursor })}`);
  return print(ctx, page, () => {
    if (page.items.length === 0) return `No ${kind} match.\n`;
    const rows =
      kind === "flows"
        ? page.items.map((f: any) => [f.id, f.name, paintStatus(ctx.p, f.status), String(f.jobCount), shortTime(f.createdAt)])
        : page.items.map((j: any) => [j.id, j.name, paintStatus(ctx.p, j.status), String(j.attemptsMade), shortTime(j.createdAt)]);
    const more = page.nextCursor ? ctx.p.dim(`more: --cursor ${page.nextCursor}\n`) : "";
    return table(["ID", "NAME", "STATUS", kind === "flows" ? "JOBS" : "ATTEMPTS", "CREATED"], rows, ctx.p) + more;
  });
}

export async function get(ctx: Ctx, kind: "flows" | "jobs", id: string): Promise<number> {
  const view = await ctx.api().request("GET", `/v1/${kind}/${encodeURIComponent(id)}`);
  return print(ctx, view, () => (kind === "flows" ? flowText(ctx.p, view) : jobText(ctx.p, view)));
}

export function flowText(p: Palette, flow: FlowLike): string {
  const elapsedMs = (flow.finishedAt ? Date.parse(flow.finishedAt) : Date.now()) - Date.parse(flow.createdAt);
  return flowFrame(flow, { statusOf: (j) => j.status, errorOf: (j) => j.error ?? null, flowStatus: flow.status, elapsedMs }, p).join("\n") + "\n";
}

function jobText(p: Palette, j: JobLike & Record<string, any>): string {
  const lines = [
    `${p.bold("job")} ${j.id}  ${p.bold(j.name)}  ${paintStatus(p, j.status)}`,
    `queue ${j.queueName}  attempts ${j.attemptsMade}  created ${shortTime(j.createdAt)}  updated ${shortTime(j.updatedAt)}`,
    `data   ${JSON.stringify(j.data)}`,
  ];
  if (j.result !== null && j.result !== undefined) lines.push(`result ${JSON.stringify(j.result)}`);
  if (j.error) lines.push(p.red(`error  ${j.error.message}`));
  return lines.join("\n") + "\n";
}

export function operationText(p: Palette, op: any): string {
  const lines = [
    `${p.bold("operation")} ${op.id}  ${op.kind}  ${paintStatus(p, op.status)}`,
    `matched ${op.matched}  done ${op.done}  skipped ${op.skipped}  failed ${op.failed}`,
    ...op.reasons.map((r: any) => `  ${p.yellow(r.code)} ×${r.count}: ${r.message}${r.ids.length ? p.dim(` (${r.ids.join(", ")}${r.count > r.ids.length ? ", …" : ""})`) : ""}`),
  ];
  if (op.error) lines.push(p.red(op.error));
  return lines.join("\n") + "\n";
}

export function listText(p: Palette, what: string, items: any[]): string {
  if (items.length === 0) return `No ${what}.\n`;
  switch (what) {
    case "schedules":
      return table(
        ["ID", "NAME", "EVERY/PATTERN", "STARTS", "NEXT RUN"],
        items.map((s) => [s.id, s.name, s.pattern ?? `${s.every} ms`, s.job ? `job ${s.job.name}` : `run ${s.run?.definition}`, s.paused ? p.yellow("paused") : shortTime(s.nextRunAt)]),
        p,
      );
    case "webhooks":
      return table(["ID", "URL", "EVENTS", "STATE"], items.map((w) => [w.id, w.url, w.events.join(","), w.disabled ? p.red(`disabled: ${w.disabledReason ?? ""}`) : p.green("active")]), p);
    case "handlers":
      return table(["QUEUE", "NAME", "SOURCE", "WORKERS", "DESCRIPTION"], items.map((h) => [h.queue, h.name, h.source, String(h.workers), h.description ?? ""]), p);
    default:
      return table(["ID", "HOST", "PID", "QUEUES", "CONCURRENCY", "LAST SEEN"], items.map((w) => [w.id, w.host, String(w.pid ?? "-"), w.queues.join(","), String(w.concurrency ?? "-"), shortTime(w.lastSeenAt)]), p);
  }
}
