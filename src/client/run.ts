/** `flowd login` and `flowd run`: the two commands that send something other than a filter. */
import { readFileSync } from "node:fs";
import { ClientError, createApi } from "./api";
import { configPath, readConfig, writeConfig } from "./config-file";
import { ClientUsageError, print, type Ctx } from "./context";
import { formatDuration } from "./output";
import { isFinishedStatus, type FlowLike } from "./render";
import { flowText } from "./views";
import { watchFlow } from "./watch";

export async function login(ctx: Ctx): Promise<number> {
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

export async function run(ctx: Ctx, file: string | undefined): Promise<number> {
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
