import { createHash } from "node:crypto";
import {
  findDefinition,
  findVersion,
  insertVersion,
  listDefinitions,
  lockOrCreateDefinition,
  markDeleted,
  nameOwners,
  undelete,
  versionsOf,
  type DefinitionRow,
  type DefinitionVersionRow,
} from "../db/queries/definitions";
import { AppError, InvalidInput } from "../errors";
import { compileSchema } from "../handlers/json-schema";
import { newId } from "../ids";
import { planGraph, type GraphJobInput } from "../scheduling/graph-plan";
import { keysetPage } from "./cursor";
import type { ServiceDeps, User } from "./deps";
import { BUILTINS, planFlow, refusal, type NodeInput } from "./flow-spec";
import type { HandlerCheck } from "./handler-registry";
import { findRefs, hasRefs, schemaAllows } from "./input-refs";

/** Names of definitions and topics: lowercase, digits and `_ . : -`, up to 128 characters. */
export const NAME_PATTERN = "^[a-z0-9][a-z0-9_.:-]{0,127}$";
const NAME_RE = new RegExp(NAME_PATTERN);

export function checkName(name: string, what: string, path: string) {
  if (!NAME_RE.test(name))
    throw refusal(
      "invalid_name",
      path,
      `${JSON.stringify(name.slice(0, 140))} is not a valid ${what}: use a lowercase letter or digit first, then up to 127 of a-z 0-9 _ . : - (${NAME_PATTERN}).`,
    );
}

export type DefinitionFlow = { name?: string; root?: NodeInput; jobs?: GraphJobInput[] };
export interface DefinitionInput {
  description?: string;
  input?: unknown;
  flow: DefinitionFlow;
}

export interface VersionView {
  name: string;
  version: number;
  description: string | null;
  input: unknown;
  flow: DefinitionFlow;
  createdAt: string;
}
export interface DefinitionSummary {
  name: string;
  /** `api`: the user's own (PUT); `module`: registered by a handler module, the same for every user. */
  source: "api" | "module";
  latestVersion: number;
  createdAt: string;
  updatedAt: string;
}
export interface DefinitionView extends DefinitionSummary {
  latest: VersionView;
  versions: { version: number; description: string | null; createdAt: string }[];
}

export const versionView = (name: string, v: DefinitionVersionRow): VersionView => ({
  name,
  version: v.version,
  description: v.description,
  input: v.inputSchema ?? null,
  flow: v.flow as DefinitionFlow,
  createdAt: v.createdAt.toISOString(),
});

const summary = (d: DefinitionRow): DefinitionSummary => ({
  name: d.name,
  source: d.userId === null ? "module" : "api",
  latestVersion: d.latestVersion,
  createdAt: d.createdAt.toISOString(),
  updatedAt: d.updatedAt.toISOString(),
});

/** 404 for a definition that does not exist for this user (or was deleted). */
export const unknownDefinition = (name: string) =>
  new AppError(404, "not_found", `No definition named ${JSON.stringify(name.slice(0, 140))} exists for this user (it may have been deleted).`);
export const unknownVersion = (name: string, version: number, latest: number) =>
  new AppError(404, "not_found", `The definition '${name}' has no version ${version}; its versions are 1 to ${latest}.`);

/** JSON with object keys sorted at every level: equal bodies hash equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object")
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(value);
}

/** A job whose data takes values from the input is checked against its handler's schema at run time, once they are known. */
function lenient(registry: HandlerCheck): HandlerCheck {
  return {
    check(queue, node, path) {
      try {
        registry.check(queue, node, path);
      } catch (err) {
        if (err instanceof InvalidInput && err.code === "invalid_job_data" && hasRefs(node.data)) return;
        throw err;
      }
    },
  };
}

/** A refusal from the flow's checks, with its paths under /flow (where they sit in a definition's body). */
function underFlow(err: unknown): unknown {
  if (!(err instanceof InvalidInput)) return err;
  const details = Array.isArray(err.details)
    ? err.details.map((d: { path?: string; message?: string }) => ({ ...d, path: `/flow${d.path ?? ""}` }))
    : err.details;
  return new InvalidInput(`In /flow: ${err.message}`, details, err.code);
}

/** The jobs of a definition's flow with where each sits, tree or graph. */
export function jobsOf(flow: DefinitionFlow): { data?: Record<string, unknown>; path: string }[] {
  if (flow.jobs) return flow.jobs.map((j, i) => ({ data: j.data, path: `/flow/jobs/${i}` }));
  const out: { data?: Record<string, unknown>; path: string }[] = [];
  const walk = (n: NodeInput, path: string) => {
    out.push({ data: n.data, path });
    n.children?.forEach((c, i) => walk(c, `${path}/children/${i}`));
  };
  if (flow.root) walk(flow.root, "/flow/root");
  return out;
}

/** Everything POST /v1/flows would refuse, plus the input schema and the `$input` references; nothing is written. */
export function checkDefinition(deps: Pick<ServiceDeps, "config" | "registry">, body: DefinitionInput) {
  if (body.input !== undefined) {
    try {
      compileSchema(body.input);
    } catch (err) {
      throw refusal("invalid_input_schema", "/input", `/input is not a valid JSON Schema: ${(err as Error).message}.`);
    }
  }
  const { flow } = body;
  if (flow.root !== undefined && flow.jobs !== undefined)
    throw refusal("invalid_input", "/flow/jobs", "Send either /flow/root (a tree) or /flow/jobs (a graph), not both.");
  if (flow.root === undefined && flow.jobs === undefined)
    throw refusal("invalid_input", "/flow/root", "Send /flow/root (a tree of jobs) or /flow/jobs (a graph of jobs).");
  for (const job of jobsOf(flow))
    for (const ref of findRefs(job.data ?? {}, `${job.path}/data`))
      if (body.input !== undefined && !schemaAllows(body.input, ref.pointer))
        throw refusal(
          "invalid_input",
          `${ref.path}/$input`,
          `At ${ref.path}: the input schema allows nothing at ${ref.pointer || "/"}, so this reference could never be resolved.`,
        );
  const registry = lenient(deps.registry ?? BUILTINS);
  try {
    if (flow.jobs) planGraph(flow.jobs, deps.config, registry);
    else planFlow(flow.root!, deps.config, registry);
  } catch (err) {
    throw underFlow(err);
  }
}

/** 409: the name belongs to a handler module's definition, which only its module changes. */
const fromModule = (name: string, what: string) =>
  new AppError(
    409,
    "definition_from_module",
    `The definition '${name}' is registered by a handler module (FLOWD_HANDLERS) for every user; ${what} it in the module, or use another name for your own.`,
  );

/**
 * Stores a new immutable version, numbered after the last (under the definition's row lock, so two
 * PUTs at once get two numbers); a body equal to the latest version's makes none and answers it.
 */
export async function putDefinition(
  deps: ServiceDeps,
  user: User,
  name: string,
  body: DefinitionInput,
): Promise<{ definition: DefinitionView; created: boolean }> {
  checkName(name, "definition name", "/name");
  checkDefinition(deps, body);
  const owners = await nameOwners(deps.db, user.userId, name);
  if (owners.module && !owners.own) throw fromModule(name, "change");
  const created = await storeVersion(deps.db, user.userId, name, body);
  return { definition: await getDefinition(deps, user, name), created };
}

/** A new version of `owner`'s definition (null: a module's), unless the body equals its latest; true when one was made. */
export async function storeVersion(db: ServiceDeps["db"], owner: string | null, name: string, body: DefinitionInput): Promise<boolean> {
  const hash = createHash("sha256")
    .update(canonicalJson({ description: body.description ?? null, input: body.input ?? null, flow: body.flow }))
    .digest("hex");
  return db.transaction(async (tx) => {
    const def = await lockOrCreateDefinition(tx, owner, name, newId());
    const latest = def.latestVersion > 0 ? await findVersion(tx, def.id, def.latestVersion) : undefined;
    if (latest?.hash === hash) {
      if (def.deletedAt) await undelete(tx, def.id);
      return false;
    }
    await insertVersion(tx, {
      definitionId: def.id,
      version: def.latestVersion + 1,
      description: body.description ?? null,
      inputSchema: body.input ?? null,
      flow: body.flow as Record<string, unknown>,
      hash,
    });
    return true;
  });
}

export async function getDefinition(deps: Pick<ServiceDeps, "db">, user: User, name: string): Promise<DefinitionView> {
  const def = await findDefinition(deps.db, user.userId, name);
  if (!def) throw unknownDefinition(name);
  const [latest, versions] = await Promise.all([findVersion(deps.db, def.id, def.latestVersion), versionsOf(deps.db, def.id)]);
  return {
    ...summary(def),
    latest: versionView(name, latest!),
    versions: versions.map((v) => ({ version: v.version, description: v.description, createdAt: v.createdAt.toISOString() })),
  };
}

export async function getVersion(deps: Pick<ServiceDeps, "db">, user: User, name: string, version: number): Promise<VersionView> {
  const def = await findDefinition(deps.db, user.userId, name);
  if (!def) throw unknownDefinition(name);
  const row = await findVersion(deps.db, def.id, version);
  if (!row) throw unknownVersion(name, version, def.latestVersion);
  return versionView(name, row);
}

export function listUserDefinitions(deps: Pick<ServiceDeps, "db">, user: User, q: { limit?: number; cursor?: string }) {
  return keysetPage(q, (limit, before) => listDefinitions(deps.db, user.userId, { limit, before }), summary);
}

/** No new runs (by hand, schedule or trigger); runs already started go on, and keep naming it. */
export async function deleteDefinition(deps: Pick<ServiceDeps, "db">, user: User, name: string): Promise<void> {
  if (await markDeleted(deps.db, user.userId, name)) return;
  if ((await nameOwners(deps.db, user.userId, name)).module) throw fromModule(name, "remove");
  throw unknownDefinition(name);
}
