/**
 * The command-line client: `flowd login`, `flows`, `jobs`, `run`, `schedules`, `webhooks`,
 * `handlers`, `workers`, `operations`. Arguments are parsed with node:util's parseArgs (strict: an
 * unknown flag is a usage error), and everything goes through the public API (api.ts).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { readFileSync } from "node:fs";
import { ClientError, createApi, type Api } from "./api";
import { configPath, readConfig, resolveTarget, writeConfig } from "./config-file";
import { formatDuration, paintStatus, palette, parseSince, shortTime, table, type Io, type Palette } from "./output";
import { flowFrame, isFinishedStatus, type FlowLike, type JobLike } from "./render";
import { watchFlow } from "./watch";
import { CLIENT_USAGE } from "./usage";

export class ClientUsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;
const GLOBAL: Options = {
  json: { type: "boolean" },
  context: { type: "string" },
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
};
const FILTERS: Options = {
  status: { type: "string" },
  name: { type: "string" },
  data: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  definition: { type: "string" },
  schedule: { type: "string" },
};

type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(args: string[], options: Options, positionals: [number, number], what: string): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...GLOBAL, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ClientUsageError(`${what}: ${(err as Error).message.split("\n")[0]}`);
  }
  const n = parsed.positionals.length;
  if (!parsed.values.help && (n < positionals[0] || n > positionals[1]))
    throw new ClientUsageError(
      n < positionals[0] ? `${what}: missing argument${positionals[0] > 1 ? "s" : ""}` : `${what}: unexpected argument '${parsed.positionals[positionals[1]]}'`,
    );
  return parsed as Parsed;
}

interface Ctx {
  io: Io;
  json: boolean;
  p: Palette;
  api: () => Api;
  values: Parsed["values"];
}

/** Runs one client command; answers the exit code (0 ok, 1 error, 2 usage). */
export async function runClient(argv: string[], io: Io): Promise<number> {
  let json = argv.includes("--json");
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof ClientUsageError) {
      io.err(`flowd: ${err.message}\n\nUsage:\n${CLIENT_USAGE}`);
      return 2;
    }
    if (err instanceof ClientError) {
      if (json) io.out(JSON.stringify({ error: { code: err.code ?? "client_error", message: err.message, ...(err.details ? { details: err.details } : {}) } }) + "\n");
      io.err(`flowd: ${err.message}\n${(err.details ?? []).map((d) => `  ${d.path ?? ""}: ${d.message ?? ""}\n`).join("")}`);
      return 1;
    }
    throw err;
  }
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  const context = (args: string[], options: Options, positionals: [number, number], what: string) => {
    const parsed = parse(args, options, positionals, what);
    const json = parsed.values.json === true;
    const v = parsed.values as Record<string, string | undefined>;
    let api: Api | undefined;
    const ctx: Ctx = {
      io,
      json,
      p: palette(io, json),
      values: parsed.values,
      api: () => (api ??= (() => {
        const target = resolveTarget(io.env, { url: v.url, token: v.token, context: v.context });
        return createApi(target.url, target.token);
      })()),
    };
    return { ctx, positionals: parsed.positionals, help: parsed.values.help === true };
  };
  if (command === "login") {
    const { ctx, help } = context(rest, {}, [0, 0], "login");
    if (help) return usage(io);
    return login(ctx);
  }
  if (command === "run") {
    const { ctx, positionals, help } = context(
      rest,
      { definition: { type: "string" }, input: { type: "string" }, version: { type: "string" }, wait: { type: "boolean" }, watch: { type: "boolean" } },
      [0, 1],
      "run",
    );
    if (help) return usage(io);
    return run(ctx, positionals[0]);
  }
  if (command === "flows" || command === "jobs") {
    const kind = command;
    const [sub, ...args] = rest;
    const what = `${kind} ${sub ?? ""}`.trim();
    switch (sub) {
      case "list": {
        const { ctx, help } = context(args, { ...FILTERS, limit: { type: "string" }, cursor: { type: "string" } }, [0, 0], what);
        return help ? usage(io) : list(ctx, kind);
      }
      case "get": {
        const { ctx, positionals, help } = context(args, {}, [1, 1], what);
        return help ? usage(io) : get(ctx, kind, positionals[0]!);
      }
      case "watch": {
        if (kind === "jobs") throw new ClientUsageError("jobs watch: watch follows a flow (flowd flows watch ID)");
        const { ctx, positionals, help } = context(args, {}, [1, 1], what);
        return help ? usage(io) : watchFlow(ctx.api(), positionals[0]!, io, ctx.p, ctx.json);
      }
      case "cancel":
      case "retry":
      case "delete": {
        const { ctx, positionals, help } = context(
          args,
          { ...FILTERS, yes: { type: "boolean", short: "y" }, "dry-run": { type: "boolean" }, "no-wait": { type: "boolean" } },
          [0, 10_000],
          what,
        );
        return help ? usage(io) : act(ctx, kind, sub, positionals);
      }
      default:
        throw new ClientUsageError(`unknown ${kind} command '${sub ?? ""}' (expected list, get, ${kind === "flows" ? "watch, " : ""}cancel, retry or delete)`);
    }
  }
  if (command === "operations") {
    const [sub, ...args] = rest;
    if (sub === "list") {
      const { ctx, help } = context(args, { limit: { type: "string" } }, [0, 0], "operations list");
      if (help) return usage(io);
      const page = await ctx.api().request("GET", `/v1/operations${query({ limit: ctx.values.limit as string | undefined })}`);
      return print(ctx, page, () =>
        page.items.length === 0
          ? "No operations.\n"
          : table(["ID", "KIND", "STATUS", "MATCHED", "DONE", "SKIPPED", "FAILED", "CREATED"], page.items.map((o: any) => [o.id, o.kind, paintStatus(ctx.p, o.status), String(o.matched), String(o.done), String(o.skipped), String(o.failed), shortTime(o.createdAt)]), ctx.p),
      );
    }
    if (sub === "get" || sub === "cancel") {
      const { ctx, positionals, help } = context(args, {}, [1, 1], `operations ${sub}`);
      if (help) return usage(io);
      const id = encodeURIComponent(positionals[0]!);
      const op = await ctx.api().request(sub === "get" ? "GET" : "POST", sub === "get" ? `/v1/operations/${id}` : `/v1/operations/${id}/cancel`);
      return print(ctx, op, () => operationText(ctx.p, op));
    }
    throw new ClientUsageError(`unknown operations command '${sub ?? ""}' (expected list, get or cancel)`);
  }
  if (command === "schedules" || command === "webhooks" || command === "handlers" || command === "workers") {
    const [sub, ...args] = rest;
    if (sub !== "list") throw new ClientUsageError(`unknown ${command} command '${sub ?? ""}' (expected list)`);
    const { ctx, help } = context(args, {}, [0, 0], `${command} list`);
    if (help) return usage(io);
    const page = await ctx.api().request("GET", `/v1/${command}`);
    return print(ctx, page, () => listText(ctx.p, command, page.items));
  }
  throw new ClientUsageError(`unknown command '${command ?? ""}'`);
}

function usage(io: Io): number {
  io.out(CLIENT_USAGE);
  return 0;
}

/** JSON mode: the value, one line; otherwise the text. */
function print(ctx: Ctx, value: unknown, text: () => string, code = 0): number {
  ctx.io.out(ctx.json ? JSON.stringify(value) + "\n" : text());
  return code;
}

const query = (q: Record<string, string | undefined>) => {
  const entries = Object.entries(q).filter(([, v]) => v !== undefined && v !== "") as [string, string][];
  return entries.length ? `?${new URLSearchParams(entries)}` : "";
};

function timeFlag(ctx: Ctx, name: "since" | "until"): string | undefined {
  const text = ctx.values[name] as string | undefined;
  if (text === undefined) return undefined;
  const iso = parseSince(text);
  if (!iso) throw new ClientUsageError(`--${name} takes a duration before now (30s, 15m, 1h, 2d, 1w) or a date-time (2026-01-31T12:00:00Z), not '${text}'`);
  return iso;
}

/** The filter flags as the API names them; `data` stays text for a query string, or is parsed for a body. */
function filters(ctx: Ctx, kind: "flows" | "jobs") {
  const v = ctx.values as Record<string, string | undefined>;
  if (kind === "jobs" && v.definition !== undefined) throw new ClientUsageError("--definition applies to flows only");
  return {
    status: v.status,
    name: v.name,
    data: v.data,
    since: timeFlag(ctx, "since"),
    until: timeFlag(ctx, "until"),
    definition: v.definition,
    scheduleId: v.schedule,
  };
}

async function list(ctx: Ctx, kind: "flows" | "jobs"): Promise<number> {
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

async function get(ctx: Ctx, kind: "flows" | "jobs", id: string): Promise<number> {
  const view = await ctx.api().request("GET", `/v1/${kind}/${encodeURIComponent(id)}`);
  return print(ctx, view, () => (kind === "flows" ? flowText(ctx.p, view) : jobText(ctx.p, view)));
}

function flowText(p: Palette, flow: FlowLike): string {
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

function operationText(p: Palette, op: any): string {
  const lines = [
    `${p.bold("operation")} ${op.id}  ${op.kind}  ${paintStatus(p, op.status)}`,
    `matched ${op.matched}  done ${op.done}  skipped ${op.skipped}  failed ${op.failed}`,
    ...op.reasons.map((r: any) => `  ${p.yellow(r.code)} ×${r.count}: ${r.message}${r.ids.length ? p.dim(` (${r.ids.join(", ")}${r.count > r.ids.length ? ", …" : ""})`) : ""}`),
  ];
  if (op.error) lines.push(p.red(op.error));
  return lines.join("\n") + "\n";
}

function listText(p: Palette, what: string, items: any[]): string {
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

async function login(ctx: Ctx): Promise<number> {
  const v = ctx.values as Record<string, string | undefined>;
  if (!v.url) throw new ClientUsageError("login needs --url URL (the flowd API, such as http://127.0.0.1:3000)");
  if (!/^https?:\/\/[^\s/]+/.test(v.url)) throw new ClientUsageError(`login: --url must be an http(s) URL, not '${v.url}'`);
  let token = v.token ?? ctx.io.env.FLOWD_TOKEN;
  if (!token) {
    const line = await ctx.io.readLine(ctx.io.stdinTty ? "API token (from `flowd token create --user NAME`): " : "");
    token = line?.trim() || undefined;
  }
  if (!token) throw new ClientUsageError("login needs a token: --token T, FLOWD_TOKEN, or typed when asked");
  const api = createApi(v.url, token);
  // Checked before it is stored: a wrong token or URL is said now, not at the next command.
  await api.request("GET", "/v1/flows?limit=1");
  const path = configPath(ctx.io.env);
  const config = readConfig(path);
  const name = v.context ?? config.current ?? "default";
  config.contexts[name] = { url: api.url, token };
  config.current = name;
  writeConfig(path, config);
  return print(ctx, { context: name, url: api.url, config: path }, () => `Logged in to ${api.url} as context '${name}' (saved in ${path}).\n`);
}

async function run(ctx: Ctx, file: string | undefined): Promise<number> {
  const v = ctx.values as Record<string, string | boolean | undefined>;
  if (v.wait && v.watch) throw new ClientUsageError("run: choose --wait or --watch, not both");
  if ((file === undefined) === (v.definition === undefined)) throw new ClientUsageError("run needs a FILE.json or --definition NAME (one of them)");
  if (file !== undefined && (v.input !== undefined || v.version !== undefined)) throw new ClientUsageError("run: --input and --version go with --definition");
  let flow: FlowLike;
  if (file !== undefined) {
    const text = readSource(file, "the flow file");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw new ClientError(`${file} is not JSON: ${(err as Error).message}`);
    }
    flow = await ctx.api().request("POST", "/v1/flows", body);
  } else {
    const body: Record<string, unknown> = {};
    if (v.input !== undefined) {
      const text = String(v.input).startsWith("@") ? readSource(String(v.input).slice(1), "the input file") : String(v.input);
      try {
        body.input = JSON.parse(text);
      } catch (err) {
        throw new ClientError(`--input is not JSON: ${(err as Error).message}`);
      }
    }
    if (v.version !== undefined) {
      const n = Number(v.version);
      if (!Number.isInteger(n) || n < 1) throw new ClientUsageError(`run: --version takes a positive integer, not '${v.version}'`);
      body.version = n;
    }
    flow = await ctx.api().request("POST", `/v1/definitions/${encodeURIComponent(String(v.definition))}/runs`, body);
  }
  if (v.watch) return watchFlow(ctx.api(), flow.id, ctx.io, ctx.p, ctx.json);
  if (v.wait) {
    const started = Date.now();
    while (!isFinishedStatus(flow.status)) flow = await ctx.api().request("GET", `/v1/flows/${flow.id}?wait=30`);
    const code = flow.status === "completed" ? 0 : 1;
    return print(ctx, flow, () => flowText(ctx.p, flow) + ctx.p.dim(`waited ${formatDuration(Date.now() - started)}\n`), code);
  }
  return print(ctx, flow, () => `Created flow ${flow.id} (${flow.name}, ${flow.jobCount} jobs). Watch it: flowd flows watch ${flow.id}\n`);
}

function readSource(file: string, what: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new ClientError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const PAST = { cancel: "cancelled", retry: "retried", delete: "deleted" } as const;

/** One id: the single-item route. Filters (or several ids): a dry run, a confirmation, the bulk operation. */
async function act(ctx: Ctx, kind: "flows" | "jobs", action: "cancel" | "retry" | "delete", ids: string[]): Promise<number> {
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
