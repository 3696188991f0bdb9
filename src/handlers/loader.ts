import { existsSync, readdirSync, statSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ValidateFunction } from "ajv";
import { HandlerModuleError } from "../errors";
import type { HandlerDefaults } from "../job-opts";
import { HANDLER_NAMES } from "./catalog";
import { checkDefaults, DefaultsProblem } from "./defaults";
import { compileSchema } from "./json-schema";

/** What a module author writes for one handler (the `flowd types` declaration file describes it). */
export interface ModuleHandlerSpec {
  run(ctx: unknown): unknown;
  data?: unknown;
  description?: string;
  queue?: string;
  timeoutMs?: number;
  concurrency?: unknown;
  rateLimit?: unknown;
  expireAfterMs?: number;
}

/** One handler from a module, checked: its schema compiled once, its queue known. */
export interface LoadedHandler {
  name: string;
  file: string;
  run: (ctx: unknown) => unknown;
  /** The queues it runs on: its own `queue`, or every queue flowd's workers consume. */
  queues: string[];
  dataSchema: Record<string, unknown> | boolean | null;
  validate: ValidateFunction | null;
  description: string | null;
  timeoutMs: number | null;
  /** Defaults for its jobs' `concurrency`, `rateLimit`, `expireAfterMs`: registered, merged by the API at create. */
  defaults: HandlerDefaults | null;
}

export const HANDLER_NAME = /^[a-z][a-z0-9_.-]{0,63}$/;
const MODULE_EXTENSIONS = new Set([".ts", ".js", ".mjs", ".cjs", ".mts", ".cts"]);
const MAX_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;

/** FLOWD_HANDLERS' entries to module files: a folder stands for its own `*.ts`/`*.js` files, in name order. */
export function moduleFiles(paths: readonly string[], cwd = process.cwd()): string[] {
  const files: string[] = [];
  for (const entry of paths) {
    const path = resolve(cwd, entry);
    if (!existsSync(path)) throw new HandlerModuleError(path, undefined, "no such file or folder");
    if (!statSync(path).isDirectory()) {
      files.push(path);
      continue;
    }
    const inside = readdirSync(path)
      .filter((f) => MODULE_EXTENSIONS.has(extname(f)) && !f.endsWith(".d.ts") && !f.startsWith("."))
      .sort()
      .map((f) => join(path, f))
      .filter((f) => statSync(f).isFile());
    if (inside.length === 0) throw new HandlerModuleError(path, undefined, "the folder holds no .ts or .js module");
    files.push(...inside);
  }
  return [...new Set(files)];
}

/** A flow definition a module exports (`export const definitions = { name: { description?, input?, flow } }`), unchecked. */
export interface ModuleDefinition {
  name: string;
  file: string;
  body: unknown;
}

/** Handlers only: see loadModules. */
export async function loadHandlerModules(paths: readonly string[], consumedQueues: readonly string[], cwd?: string): Promise<LoadedHandler[]> {
  return (await loadModules(paths, consumedQueues, cwd)).handlers;
}

/**
 * The one front door for user code: imports each module, checks its default export's shape, compiles
 * every data schema, and refuses names that collide; collects the flow definitions modules export.
 * Any problem throws a HandlerModuleError before the process has connected to anything, so nothing
 * is half-started.
 */
export async function loadModules(paths: readonly string[], consumedQueues: readonly string[], cwd?: string) {
  const loaded: LoadedHandler[] = [];
  const definitions: ModuleDefinition[] = [];
  const owner = new Map<string, string>();
  const definedIn = new Map<string, string>();
  for (const file of moduleFiles(paths, cwd)) {
    const { handlers: exported, definitions: defined } = await importModule(file);
    for (const [name, body] of Object.entries(defined)) {
      const other = definedIn.get(name);
      if (other) throw new HandlerModuleError(file, undefined, `definition '${name}': the name is already used by ${other}`);
      definedIn.set(name, file);
      definitions.push({ name, file, body });
    }
    for (const [name, spec] of Object.entries(exported)) {
      const handler = checkHandler(file, name, spec, consumedQueues);
      if ((HANDLER_NAMES as readonly string[]).includes(name)) throw new HandlerModuleError(file, name, "the name is taken by a built-in handler");
      const other = owner.get(name);
      if (other) throw new HandlerModuleError(file, name, `the name is already used by ${other}`);
      owner.set(name, file);
      loaded.push(handler);
    }
  }
  return { handlers: loaded, definitions };
}

async function importModule(file: string): Promise<{ handlers: Record<string, unknown>; definitions: Record<string, unknown> }> {
  let mod: { default?: unknown; definitions?: unknown };
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    const message = err instanceof Error ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}` : String(err);
    throw new HandlerModuleError(file, undefined, `does not load: ${oneLine(message)}`);
  }
  const defined = mod.definitions;
  if (defined !== undefined && (defined === null || typeof defined !== "object" || Array.isArray(defined)))
    throw new HandlerModuleError(file, undefined, `the export 'definitions' must be an object mapping definition names to { description?, input?, flow }; got ${describe(defined)}`);
  const definitions = (defined ?? {}) as Record<string, unknown>;
  const value = mod.default;
  // A module may ship flow definitions only.
  if (value === undefined && Object.keys(definitions).length > 0) return { handlers: {}, definitions };
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new HandlerModuleError(file, undefined, `the default export must be an object mapping handler names to { run, data?, description?, queue?, timeoutMs?, concurrency?, rateLimit?, expireAfterMs? }; got ${describe(value)}`);
  if (Object.keys(value).length === 0) throw new HandlerModuleError(file, undefined, "the default export names no handler");
  return { handlers: value as Record<string, unknown>, definitions };
}

function checkHandler(file: string, name: string, spec: unknown, consumedQueues: readonly string[]): LoadedHandler {
  const fail = (problem: string) => new HandlerModuleError(file, name, problem);
  if (!HANDLER_NAME.test(name)) throw fail(`the name must match ${HANDLER_NAME.source}`);
  if (spec === null || typeof spec !== "object") throw fail(`must be an object { run, data?, description?, queue?, timeoutMs?, concurrency?, rateLimit?, expireAfterMs? }; got ${describe(spec)}`);
  const s = spec as Partial<ModuleHandlerSpec>;
  if (typeof s.run !== "function") throw fail(`run must be a function; got ${describe(s.run)}`);
  if (s.description !== undefined && typeof s.description !== "string") throw fail("description must be a string");
  if (s.queue !== undefined && (typeof s.queue !== "string" || !consumedQueues.includes(s.queue)))
    throw fail(`queue ${JSON.stringify(s.queue)} is not one this worker consumes (${consumedQueues.join(", ")}; see FLOWD_QUEUES)`);
  if (s.timeoutMs !== undefined && !(Number.isInteger(s.timeoutMs) && s.timeoutMs > 0 && s.timeoutMs <= MAX_TIMEOUT_MS))
    throw fail(`timeoutMs must be a whole number of milliseconds between 1 and ${MAX_TIMEOUT_MS}`);
  let defaults: HandlerDefaults | null;
  try {
    defaults = checkDefaults(s);
  } catch (err) {
    if (err instanceof DefaultsProblem) throw fail(err.message);
    throw err;
  }
  let validate: ValidateFunction | null = null;
  let dataSchema: LoadedHandler["dataSchema"] = null;
  if (s.data !== undefined) {
    try {
      ({ schema: dataSchema, validate } = compileSchema(s.data));
    } catch (err) {
      throw fail(`data is not a valid JSON Schema: ${oneLine((err as Error).message)}`);
    }
  }
  return {
    name,
    file,
    run: s.run.bind(spec),
    queues: s.queue ? [s.queue] : [...consumedQueues],
    dataSchema,
    validate,
    description: s.description ?? null,
    timeoutMs: s.timeoutMs ?? null,
    defaults,
  };
}

const oneLine = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean).join(" ").slice(0, 500);

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "function") return "a function";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value) ?? ""}`.trim();
}
