/** Cancel, retry and delete from the command line: one id through its route, or a bulk operation by filter. */
import { ClientError } from "./api";
import { ClientUsageError, filters, print, type Ctx } from "./context";
import { formatDuration, paintStatus } from "./output";
import { operationText } from "./views";

const PAST = { cancel: "cancelled", retry: "retried", delete: "deleted" } as const;

/** One id: the single-item route. Filters (or several ids): a dry run, a confirmation, the bulk operation. */
export async function act(ctx: Ctx, kind: "flows" | "jobs", action: "cancel" | "retry" | "delete", ids: string[]): Promise<number> {
  const f = filters(ctx, kind);
  const hasFilter = Object.values(f).some((x) => x !== undefined);
  const v = ctx.values as Record<string, string | boolean | undefined>;
  const noun = kind === "flows" ? "flow" : "job";
  if (ids.length === 1 && !hasFilter && !v["dry-run"]) {
    const id = encodeURIComponent(ids[0]!);
    if (action === "delete") {
      await ctx.api().request("DELETE", `/v1/${kind}/${id}`);
      return print(ctx, { id: ids[0], deleted: true }, () => `Deleted ${noun} ${ids[0]}.\n`);
    }
    const view = await ctx.api().request("POST", `/v1/${kind}/${id}/${action}`);
    return print(ctx, view, () => `${PAST[action][0]!.toUpperCase()}${PAST[action].slice(1)} ${noun} ${view.id}: now ${paintStatus(ctx.p, view.status)}.\n`);
  }
  if (!hasFilter && ids.length === 0)
    throw new ClientUsageError(`${kind} ${action} needs an ID or filters (--status, --name, --data, --since, --until…)`);
  let data: unknown;
  if (f.data !== undefined) {
    try {
      data = JSON.parse(f.data);
    } catch {
      throw new ClientUsageError(`--data takes a JSON object such as '{"customer":42}', not '${f.data}'`);
    }
  }
  const body: Record<string, unknown> = Object.fromEntries(Object.entries({ ...f, data }).filter(([, x]) => x !== undefined));
  if (ids.length > 0) body.ids = ids;
  const route = `/v1/${kind}/bulk/${action}`;
  const dry = await ctx.api().request<{ matched: number; sample: string[] }>("POST", route, { ...body, dryRun: true });
  if (v["dry-run"]) return print(ctx, dry, () => `${dry.matched} ${kind} match (dry run; nothing changed).${dry.sample.length ? "\n" + dry.sample.join("\n") : ""}\n`);
  if (dry.matched === 0) return print(ctx, { ...dry, operation: null }, () => `No ${kind} match; nothing to ${action}.\n`);
  if (!v.yes) {
    if (!ctx.io.stdinTty) throw new ClientError(`${dry.matched} ${kind} match; pass --yes to ${action} them without a confirmation`);
    const answer = await ctx.io.readLine(`${action[0]!.toUpperCase()}${action.slice(1)} ${dry.matched} ${dry.matched === 1 ? noun : kind}? [y/N] `);
    if (!/^y(es)?$/i.test((answer ?? "").trim())) {
      ctx.io.err("flowd: nothing done.\n");
      return 1;
    }
  }
  let op = await ctx.api().request("POST", route, body);
  if (!v["no-wait"]) op = await followOperation(ctx, op);
  const code = op.failed > 0 || op.status === "failed" ? 1 : 0;
  return print(ctx, op, () => operationText(ctx.p, op), code);
}

/** Polls the operation until it ends, with a one-line progress in a terminal. */
async function followOperation(ctx: Ctx, op: any): Promise<any> {
  const started = Date.now();
  while (op.status === "running") {
    if (ctx.io.isTty && !ctx.json) {
      const settled = op.done + op.skipped + op.failed;
      ctx.io.out(`\r\x1b[K${op.kind}: ${settled}/${op.matched} (${formatDuration(Date.now() - started)})`);
    }
    await Bun.sleep(250);
    op = await ctx.api().request("GET", `/v1/operations/${op.id}`);
  }
  if (ctx.io.isTty && !ctx.json) ctx.io.out("\r\x1b[K");
  return op;
}
