import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { Config } from "../config";
import { InvalidInput } from "../errors";
import { handlers, isHandlerName, HANDLER_NAMES, type HandlerName } from "../handlers/catalog";
import { newId } from "../ids";
import type { JobOpts } from "../job-opts";
import type { FlowJobRow } from "../db/queries/flows";

/** What a client sends for one job of a flow (the route's schema has already checked shapes). */
export interface NodeInput {
  name: string;
  queue?: string;
  data?: Record<string, unknown>;
  opts?: JobOpts;
  children?: NodeInput[];
}

/**
 * One validated job of a flow, with its ids assigned before anything is written: the part of its
 * row the request decides (`children`: row ids of the direct children, in the order given).
 */
export type PlannedJob = Pick<FlowJobRow, "id" | "jobId" | "parentId" | "name" | "queueName" | "data" | "opts" | "depth"> & { children: string[] };

/** Handler data schemas compiled once: a 1,000-job flow checks 1,000 payloads per request. */
const compiled = new Map<HandlerName, TypeCheck<TSchema>>();
function dataCheck(name: HandlerName): TypeCheck<TSchema> {
  let check = compiled.get(name);
  if (!check) compiled.set(name, (check = TypeCompiler.Compile(handlers[name].data)));
  return check;
}

/** A 400 whose details have the same shape as schema validation's: a list of { path, message }. */
const refusal = (code: string, path: string, message: string) => new InvalidInput(message, [{ path, message }], code);

const POLICY_KEYS = ["failParentOnFailure", "ignoreDependencyOnFailure", "continueParentOnFailure", "removeDependencyOnFailure"] as const;

/** Checks a job's name, data and opts against the handler catalog; shared by flows and single jobs. */
export function checkJob(node: { name: string; data?: unknown; opts?: JobOpts }, path: string) {
  if (!isHandlerName(node.name))
    throw refusal("unknown_handler", `${path}/name`, `Unknown handler '${node.name}'${path ? ` at ${path}` : ""}; known handlers: ${HANDLER_NAMES.join(", ")}.`);
  const data = node.data ?? {};
  const check = dataCheck(node.name);
  if (!check.Check(data)) {
    const first = check.Errors(data).First();
    const at = `${path}/data${first?.path ?? ""}`;
    throw refusal("invalid_job_data", at, `Invalid data for handler '${node.name}' at ${at}: ${first?.message ?? "does not match"}.`);
  }
  const policies = POLICY_KEYS.filter((k) => node.opts?.[k] === true);
  if (policies.length > 1)
    throw refusal("invalid_input", `${path}/opts`, `At ${path}/opts choose at most one failure policy; got ${policies.join(" and ")}.`);
}

/**
 * Validates a whole flow before anything is written — handler names, queues, data, limits —
 * and plans its rows: depth-first, parents before children, every id assigned.
 */
export function planFlow(root: NodeInput, config: Pick<Config, "flowQueues" | "maxFlowJobs" | "maxFlowDepth">): PlannedJob[] {
  const planned: PlannedJob[] = [];
  const visit = (node: NodeInput, parent: PlannedJob | null, depth: number, path: string) => {
    if (depth > config.maxFlowDepth)
      throw new InvalidInput(`The flow is deeper than ${config.maxFlowDepth} levels (FLOWD_MAX_FLOW_DEPTH) at ${path}.`, { limit: config.maxFlowDepth }, "flow_too_deep");
    if (planned.length >= config.maxFlowJobs)
      throw new InvalidInput(`The flow has more than ${config.maxFlowJobs} jobs (FLOWD_MAX_FLOW_JOBS).`, { limit: config.maxFlowJobs }, "too_many_jobs");
    const queueName = node.queue ?? config.flowQueues[0]!;
    if (!config.flowQueues.includes(queueName))
      throw refusal("unknown_queue", `${path}/queue`, `Unknown queue '${queueName}' at ${path}/queue; this deployment accepts ${config.flowQueues.join(", ")} (FLOWD_QUEUES).`);
    checkJob(node, path);
    const id = newId();
    const job: PlannedJob = {
      id,
      jobId: id,
      parentId: parent?.id ?? null,
      name: node.name,
      queueName,
      data: node.data ?? {},
      opts: node.opts ?? {},
      depth,
      children: [],
    };
    parent?.children.push(job.id);
    planned.push(job);
    (node.children ?? []).forEach((child, i) => visit(child, job, depth + 1, `${path}/children/${i}`));
  };
  visit(root, null, 1, "/root");
  return planned;
}
