import type { ValidateFunction } from "ajv";
import { findRunnable } from "../db/queries/definitions";
import { findFlowByIdempotencyKey } from "../db/queries/flows";
import { compileSchema, firstProblem } from "../handlers/json-schema";
import type { User } from "./deps";
import { unknownDefinition, unknownVersion, type DefinitionFlow } from "./definitions";
import { refusal, type NodeInput } from "./flow-spec";
import { createFlow, replay, type CreateFlowDeps, type FlowOrigin } from "./flows";
import type { DefinitionVersionRow } from "../db/queries/definitions";
import type { FlowView } from "./flow-views";
import { requestHash } from "./idempotency";
import { resolveRefs } from "./input-refs";

export interface RunInput {
  input?: unknown;
  version?: number;
}

/** Compiled input schemas by definition id and version: a version never changes, so neither does its validator. */
const validators = new Map<string, ValidateFunction>();
const VALIDATORS_KEPT = 500;

function validatorFor(key: string, schema: unknown): ValidateFunction {
  let v = validators.get(key);
  if (v) return v;
  v = compileSchema(schema).validate;
  if (validators.size >= VALIDATORS_KEPT) validators.delete(validators.keys().next().value!);
  validators.set(key, v);
  return v;
}

/** 400 `invalid_input` naming the path when `input` does not match the version's schema (none: anything goes). */
export function checkInput(name: string, definitionId: string, version: DefinitionVersionRow, input: unknown, base = "/input") {
  if (version.inputSchema === null) return;
  const validate = validatorFor(`${definitionId}:${version.version}`, version.inputSchema);
  if (validate(input)) return;
  const problem = firstProblem(validate.errors, base);
  throw refusal("invalid_input", problem.path, `The input does not match the input schema of '${name}' version ${version.version}: at ${problem.path} ${problem.message}.`);
}

/** The definition and version a run would use (the latest when `version` is absent); 404 naming what is missing. */
export async function runnableVersion(db: CreateFlowDeps["db"], user: User, name: string, version?: number) {
  const found = await findRunnable(db, user.userId, name, version);
  if (!found) throw unknownDefinition(name);
  if (!found.version) throw unknownVersion(name, version ?? 0, found.definition.latestVersion);
  return { definition: found.definition, version: found.version };
}

/** The flow a version describes, with every `$input` reference replaced by the input's value. */
export function resolveFlow(flow: DefinitionFlow, input: unknown, name: string) {
  if (flow.jobs)
    return { name: flow.name ?? name, jobs: flow.jobs.map((j, i) => ({ ...j, data: resolveRefs(j.data ?? {}, input, `/flow/jobs/${i}/data`) as Record<string, unknown> })) };
  const walk = (n: NodeInput, path: string): NodeInput => ({
    ...n,
    data: resolveRefs(n.data ?? {}, input, `${path}/data`) as Record<string, unknown>,
    ...(n.children ? { children: n.children.map((c, i) => walk(c, `${path}/children/${i}`)) } : {}),
  });
  return { name: flow.name ?? name, root: walk(flow.root!, "/flow/root") };
}

/** A run ready to create: the version it runs and the flow with the input filled in; 404/400 as a run by hand answers. */
export async function prepareRun(db: CreateFlowDeps["db"], user: User, name: string, body: RunInput) {
  const input = body.input === undefined ? {} : body.input;
  const { definition, version } = await runnableVersion(db, user, name, body.version);
  checkInput(name, definition.id, version, input);
  return { version: version.version, flow: resolveFlow(version.flow as DefinitionFlow, input, name) };
}
export type PreparedRun = Awaited<ReturnType<typeof prepareRun>>;

/** What a repeat of a keyed run must match: the definition, the version asked for, the input. */
export const runRequest = (name: string, body: RunInput) => ({ definition: name, version: body.version ?? null, input: body.input === undefined ? {} : body.input });

/**
 * Starts a run of a definition: its version (the latest by default) checks the input against its
 * schema, the input fills the `$input` references, and the flow is created as POST /v1/flows
 * creates one, recording the definition and version. A later version never touches it: the run's
 * jobs are written whole when it starts. `Idempotency-Key` repeats match on { version, input }.
 */
export async function runDefinition(
  deps: CreateFlowDeps,
  user: User,
  name: string,
  body: RunInput,
  idempotencyKey?: string,
  link: Pick<FlowOrigin, "scheduleId" | "eventId"> = {},
): Promise<{ flow: FlowView; replayed: boolean }> {
  const request = runRequest(name, body);
  if (idempotencyKey) {
    // Before the definition is read: a repeat answers even if it was deleted since.
    const existing = await findFlowByIdempotencyKey(deps.db, user.userId, idempotencyKey);
    if (existing) return { flow: await replay(deps, existing, requestHash(request)), replayed: true };
  }
  const prepared = await prepareRun(deps.db, user, name, body);
  return createPreparedRun(deps, user, name, prepared, idempotencyKey, { link, request });
}

/**
 * Creates a prepared run. `fresh`: the caller knows no flow has the key yet (a key derived from a
 * row it just wrote), so the look-up before the insert and the stored first answer are skipped —
 * the flows' unique index on the key still decides a race, and the loser answers the winner's flow.
 */
export function createPreparedRun(
  deps: CreateFlowDeps,
  user: User,
  name: string,
  prepared: PreparedRun,
  idempotencyKey: string | undefined,
  o: { link?: Pick<FlowOrigin, "scheduleId" | "eventId">; request: unknown; fresh?: boolean },
) {
  return createFlow(deps, user, prepared.flow, idempotencyKey, {
    origin: { definition: name, definitionVersion: prepared.version, ...o.link },
    request: o.request,
    fresh: o.fresh,
  });
}
