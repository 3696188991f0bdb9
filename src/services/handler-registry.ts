import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { ValidateFunction } from "ajv";
import type { Sql } from "postgres";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { listHandlerRows, recordExternalHandlers, REGISTRY_CHANNEL, type HandlerRow } from "../db/queries/registry";
import { InvalidInput } from "../errors";
import type { HandlerDefaults } from "../job-opts";
import { handlers as builtins, HANDLER_NAMES, isHandlerName, isWaitStep, type HandlerName } from "../handlers/catalog";
import { waitStepProblem } from "../handlers/wait-steps";
import { compileSchema, firstProblem } from "../handlers/json-schema";
import type { Logger } from "../log";
import { assertPublicUrlWithoutDns, SafeFetchError } from "../net/safe-fetch";
import { consumedQueues } from "../queues";

export type HandlerSource = "builtin" | "module" | "external";

export interface HandlerEntry {
  queue: string;
  name: string;
  source: HandlerSource;
  description: string | null;
  dataSchema: unknown;
  /** A module handler's defaults for its jobs' opts; none for built-ins and external names. */
  defaults: HandlerDefaults | null;
}

export const BUILTIN_DESCRIPTIONS: Record<HandlerName, string> = {
  echo: "Returns its data and its children's results.",
  sleep: "Waits `ms` milliseconds; stops early when cancelled.",
  http: "Calls a URL (SSRF-guarded); non-2xx fails the attempt.",
  fail: "Fails on purpose: every attempt, or only the first `times`.",
  wait: "Waits `for` a duration or `until` a time without holding a worker slot; survives restarts.",
  signal: "Waits for POST /v1/jobs/:id/signal (or /v1/signals by `key`, or its completion URL); the payload is its result.",
  approval: "Waits for POST /v1/jobs/:id/approve or /reject by one of `approvers` (default: the owner).",
};

/** The built-ins on every queue flowd's own workers consume: known to every process without asking anyone. */
export const builtinEntries = (config: Pick<Config, "flowQueues">): HandlerEntry[] =>
  consumedQueues(config).flatMap((queue) =>
    HANDLER_NAMES.map((name) => ({ queue, name, source: "builtin" as const, description: BUILTIN_DESCRIPTIONS[name], dataSchema: JSON.parse(JSON.stringify(builtins[name].data)), defaults: null })),
  );

/** Validates a new job's name and data for its queue; throws 400 `unknown_handler` / `invalid_job_data`. */
export interface HandlerCheck {
  check(queue: string, node: { name: string; data?: unknown }, path: string): void;
  /** What the handler's module declared for its jobs' opts (README "Handler modules"), if anything. */
  defaultsOf?(queue: string, name: string): HandlerDefaults | null;
}

/** A 400 whose details have the same shape as schema validation's: a list of { path, message }. */
const refusal = (code: string, path: string, message: string) => new InvalidInput(message, [{ path, message }], code);

/** Built-in data schemas compiled once: a 1,000-job flow checks 1,000 payloads per request. */
const compiledBuiltins = new Map<HandlerName, TypeCheck<TSchema>>();
function builtinCheck(name: HandlerName): TypeCheck<TSchema> {
  let check = compiledBuiltins.get(name);
  if (!check) compiledBuiltins.set(name, (check = TypeCompiler.Compile(builtins[name].data)));
  return check;
}

function checkBuiltin(name: HandlerName, data: unknown, path: string) {
  const check = builtinCheck(name);
  if (check.Check(data)) return;
  const first = check.Errors(data).First();
  const at = `${path}/data${first?.path ?? ""}`;
  throw refusal("invalid_job_data", at, `Invalid data for handler '${name}' at ${at}: ${first?.message ?? "does not match"}.`);
}

/**
 * An `http` job's URL is held at creation to what a webhook's is, as far as that needs no DNS: a
 * loopback, private, link-local or metadata literal (or `localhost`) is 400 `invalid_url` now rather
 * than a failed attempt later. A host name is checked when the job runs, after resolution.
 */
function checkHttpUrl(data: unknown, path: string, allowPrivate: boolean) {
  const url = (data as { url: string }).url;
  try {
    assertPublicUrlWithoutDns(url, allowPrivate);
  } catch (err) {
    if (!(err instanceof SafeFetchError)) throw err;
    const at = `${path}/data/url`;
    throw refusal("invalid_url", at, `Invalid URL at ${at}: ${err.message}`);
  }
}

function checkIsObject(data: unknown, path: string) {
  if (data === null || typeof data !== "object" || Array.isArray(data))
    throw refusal("invalid_job_data", `${path}/data`, `Invalid data at ${path}/data: must be a JSON object.`);
}

interface Known {
  name: string;
  validate: ValidateFunction | null;
  schemaText: string;
  defaults: HandlerDefaults | null;
}

/**
 * What the API validates against: the built-ins, plus every handler a worker registered in Postgres
 * (kept in memory, re-read when a worker rings REGISTRY_CHANNEL and every 30 s, since a
 * notification is only a hint). API processes never load the users' code; on an external queue
 * any name is accepted with any JSON object as data.
 */
export function createHandlerRegistry(config: Pick<Config, "flowQueues" | "externalQueues"> & Partial<Pick<Config, "allowPrivateUrls">>) {
  const allowPrivate = config.allowPrivateUrls ?? false;
  const consumed = new Set(consumedQueues(config));
  const external = new Set(config.externalQueues);
  let byQueue = new Map<string, Map<string, Known>>();
  // Names first seen on an external queue, to be recorded (source `external`) by followRegistry.
  const discovered = new Map<string, { queue: string; name: string }>();

  const load = (rows: (Pick<HandlerRow, "queue" | "name" | "source" | "dataSchema"> & Partial<Pick<HandlerRow, "defaults">>)[]) => {
    const next = new Map<string, Map<string, Known>>();
    for (const row of rows) {
      if (row.source === "builtin" || !(consumed.has(row.queue) || external.has(row.queue))) continue;
      const schemaText = JSON.stringify(row.dataSchema ?? null);
      const previous = byQueue.get(row.queue)?.get(row.name);
      const defaults = row.defaults ?? null;
      const sameSchema = previous !== undefined && previous.schemaText === schemaText;
      let known: Known = sameSchema ? { ...previous, defaults } : { name: row.name, validate: null, schemaText, defaults };
      if (!sameSchema && row.dataSchema !== null && row.dataSchema !== undefined) {
        try {
          known = { ...known, validate: compileSchema(row.dataSchema).validate };
        } catch {
          // The worker compiled it before registering; a schema Ajv here refuses is treated as "any object".
        }
      }
      const queue = next.get(row.queue) ?? new Map<string, Known>();
      queue.set(row.name, known);
      next.set(row.queue, queue);
    }
    byQueue = next;
  };

  const check: HandlerCheck["check"] = (queue, node, path) => {
    const data = node.data ?? {};
    if (external.has(queue)) {
      checkIsObject(data, path);
      if (!byQueue.get(queue)?.has(node.name) && discovered.size < 1000) discovered.set(`${queue}:${node.name}`, { queue, name: node.name });
      return;
    }
    if (isHandlerName(node.name)) {
      checkBuiltin(node.name, data, path);
      if (node.name === "http") checkHttpUrl(data, path, allowPrivate);
      const problem = isWaitStep(node.name) ? waitStepProblem(node.name, data as Record<string, unknown>) : null;
      if (problem) throw refusal("invalid_job_data", `${path}/data${problem.path}`, `Invalid data for handler '${node.name}' at ${path}/data${problem.path}: ${problem.message}.`);
      return;
    }
    const known = byQueue.get(queue)?.get(node.name);
    if (!known) {
      const names = [...HANDLER_NAMES, ...(byQueue.get(queue)?.keys() ?? [])];
      throw refusal(
        "unknown_handler",
        `${path}/name`,
        `Unknown handler '${node.name}' on queue '${queue}'${path ? ` at ${path}` : ""}: no worker consuming '${queue}' has registered it (a worker registers its FLOWD_HANDLERS modules at start); known on '${queue}': ${names.join(", ")}.`,
      );
    }
    checkIsObject(data, path);
    if (known.validate && !known.validate(data)) {
      const problem = firstProblem(known.validate.errors, `${path}/data`);
      throw refusal("invalid_job_data", problem.path, `Invalid data for handler '${node.name}' at ${problem.path}: ${problem.message}.`);
    }
  };
  // Built-ins and names on external queues have none: only a module handler's registration carries them.
  const defaultsOf = (queue: string, name: string) => byQueue.get(queue)?.get(name)?.defaults ?? null;
  /** The names seen on external queues since the last call. */
  const takeDiscovered = () => {
    const out = [...discovered.values()];
    discovered.clear();
    return out;
  };
  return { check, defaultsOf, load, takeDiscovered };
}

export type HandlerRegistry = ReturnType<typeof createHandlerRegistry>;

/** Only the built-ins: what a caller without a registry (tests, tools) validates against. */
export const builtinRegistry = (config: Pick<Config, "flowQueues" | "externalQueues"> & Partial<Pick<Config, "allowPrivateUrls">>): HandlerCheck =>
  createHandlerRegistry(config);

/** Keeps a registry fresh from Postgres; `ready` resolves after the first read. */
export function followRegistry(deps: { db: Db; sql: Sql; registry: HandlerRegistry; log: Logger }) {
  const { db, sql, registry, log } = deps;
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  const refresh = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          registry.load(await listHandlerRows(db));
        } catch (err) {
          log.warn("could not read the handler registry; keeping the last one", { err: String(err) });
        }
      } while (again && !stopped);
    })().finally(() => (running = null));
    return running;
  };
  const listening = sql.listen(REGISTRY_CHANNEL, () => void refresh(), () => void refresh()).catch((err) => {
    log.warn("could not listen for handler registrations; polling only", { err: String(err) });
    return null;
  });
  const poll = setInterval(() => void refresh(), 30_000);
  poll.unref?.();
  // A create must not wait for this: names seen on external queues are recorded in the background.
  const record = setInterval(() => {
    const seen = registry.takeDiscovered();
    if (seen.length === 0) return;
    recordExternalHandlers(db, seen).then(refresh, (err) => log.warn("could not record handler names seen on external queues", { err: String(err) }));
  }, 1_000);
  record.unref?.();
  return {
    ready: refresh(),
    refresh,
    async stop() {
      stopped = true;
      clearInterval(poll);
      clearInterval(record);
      const l = await listening;
      await l?.unlisten().catch(() => {});
    },
  };
}
