/**
 * The command-line client: `flowd login`, `flows`, `jobs`, `run`, `schedules`, `webhooks`,
 * `handlers`, `workers`, `operations`. Arguments are parsed with node:util's parseArgs (strict: an
 * unknown flag is a usage error), and everything goes through the public API (api.ts).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ClientError, createApi, type Api } from "./api";
import { act } from "./bulk";
import { resolveTarget } from "./config-file";
import { ClientUsageError, print, query, type Ctx } from "./context";
import { paintStatus, palette, shortTime, table, type Io } from "./output";
import { login, run } from "./run";
import { CLIENT_USAGE } from "./usage";
import { completionScript } from "./completion";
import { get, list, listText, operationText } from "./views";
import { watchFlow } from "./watch";
import { watchJob } from "./watch-job";

export { ClientUsageError };

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
    // Anything else is a bug or the machine (a full disk writing the config): still one line, not a stack.
    io.err(`flowd: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  // `flowd flows --help`, `flowd operations -h`: the usage, as for a command's own --help.
  if (rest[0] === "--help" || rest[0] === "-h") return usage(io);
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
        const { ctx, positionals, help } = context(args, {}, [1, 1], what);
        if (help) return usage(io);
        return kind === "jobs" ? watchJob(ctx.api(), positionals[0]!, io, ctx.p, ctx.json) : watchFlow(ctx.api(), positionals[0]!, io, ctx.p, ctx.json);
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
        throw new ClientUsageError(`unknown ${kind} command '${sub ?? ""}' (expected list, get, watch, cancel, retry or delete)`);
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
  if (command === "completion") {
    const [shell, ...extra] = rest;
    if ((shell !== "bash" && shell !== "zsh") || extra.length > 0) throw new ClientUsageError("completion takes bash or zsh");
    io.out(completionScript(shell));
    return 0;
  }
  throw new ClientUsageError(`unknown command '${command ?? ""}'`);
}

function usage(io: Io): number {
  io.out(CLIENT_USAGE);
  return 0;
}
















