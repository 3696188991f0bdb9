import { limitProblem } from "../scheduling/limits";
import type { Config } from "../config";
import { InvalidInput } from "../errors";
import { createHandlerRegistry, type HandlerCheck } from "./handler-registry";
import { newId } from "../ids";
import { withHandlerDefaults, type JobOpts } from "../job-opts";
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

/** A 400 whose details have the same shape as schema validation's: a list of { path, message }. */
export const refusal = (code: string, path: string, message: string) => new InvalidInput(message, [{ path, message }], code);

/** Debounce collapses creates of one job over time (POST /v1/jobs): a bulk's or a schedule's jobs are refused it. */
export function refuseDebounce(opts: JobOpts | undefined, path: string, where: string) {
  if (opts?.debounce !== undefined)
    throw refusal("invalid_input", `${path}/opts/debounce`, `At ${path}/opts/debounce: debounce applies to POST /v1/jobs only, not to ${where}.`);
}

const POLICY_KEYS = ["failParentOnFailure", "ignoreDependencyOnFailure", "continueParentOnFailure", "removeDependencyOnFailure"] as const;

/** Without a registry (tests, tools), the built-ins on the default queues. */
export const BUILTINS = createHandlerRegistry({ flowQueues: ["flows"], externalQueues: [] });

/**
 * Checks a job's name, data and opts against the handlers its queue's workers registered (the
 * built-ins when no registry is given); shared by every create path. Returns the opts the job is
 * written with: its own, over its handler module's defaults (the one place they are merged in).
 */
export function checkJob(node: { name: string; data?: unknown; opts?: JobOpts }, path: string, registry: HandlerCheck = BUILTINS, queue = "jobs"): JobOpts {
  registry.check(queue, node, path);
  const policies = POLICY_KEYS.filter((k) => node.opts?.[k] === true);
  if (policies.length > 1)
    throw refusal("invalid_input", `${path}/opts`, `At ${path}/opts choose at most one failure policy; got ${policies.join(" and ")}.`);
  const limit = limitProblem(node.opts);
  if (limit) throw refusal("invalid_input", `${path}${limit.path}`, `At ${path}${limit.path}: ${limit.message}.`);
  // Checked when the module was loaded, and a field the job sets replaces its default whole.
  return withHandlerDefaults(registry.defaultsOf?.(queue, node.name), node.opts);
}

/** A single job's queue: `jobs`, or one of FLOWD_EXTERNAL_QUEUES; anything else is 400 `unknown_queue`. */
export function singleJobQueue(config: Partial<Pick<Config, "externalQueues">>, queue: string | undefined, path: string): string {
  if (queue === undefined || queue === "jobs") return "jobs";
  if (config.externalQueues?.includes(queue)) return queue;
  throw refusal(
    "unknown_queue",
    `${path}/queue`,
    `Unknown queue '${queue}' at ${path}/queue; a single job runs on 'jobs' or on an external queue${config.externalQueues?.length ? ` (${config.externalQueues.join(", ")})` : " (none is set: FLOWD_EXTERNAL_QUEUES)"}.`,
  );
}

/** A flow job's queue: one of FLOWD_QUEUES (the first by default) or FLOWD_EXTERNAL_QUEUES; else 400 `unknown_queue`. */
export function flowQueue(config: Pick<Config, "flowQueues"> & Partial<Pick<Config, "externalQueues">>, queue: string | undefined, path: string): string {
  const queueName = queue ?? config.flowQueues[0]!;
  if (!config.flowQueues.includes(queueName) && !config.externalQueues?.includes(queueName))
    throw refusal(
      "unknown_queue",
      `${path}/queue`,
      `Unknown queue '${queueName}' at ${path}/queue; this deployment accepts ${[...config.flowQueues, ...(config.externalQueues ?? [])].join(", ")} (FLOWD_QUEUES, FLOWD_EXTERNAL_QUEUES).`,
    );
  return queueName;
}

/**
 * Validates a whole flow before anything is written — handler names, queues, data, limits —
 * and plans its rows: depth-first, parents before children, every id assigned.
 */
export function planFlow(
  root: NodeInput,
  config: Pick<Config, "flowQueues" | "maxFlowJobs" | "maxFlowDepth"> & Partial<Pick<Config, "externalQueues">>,
  registry: HandlerCheck = BUILTINS,
): PlannedJob[] {
  const planned: PlannedJob[] = [];
  const visit = (node: NodeInput, parent: PlannedJob | null, depth: number, path: string) => {
    if (depth > config.maxFlowDepth)
      throw new InvalidInput(`The flow is deeper than ${config.maxFlowDepth} levels (FLOWD_MAX_FLOW_DEPTH) at ${path}.`, { limit: config.maxFlowDepth }, "flow_too_deep");
    if (planned.length >= config.maxFlowJobs)
      throw new InvalidInput(`The flow has more than ${config.maxFlowJobs} jobs (FLOWD_MAX_FLOW_JOBS).`, { limit: config.maxFlowJobs }, "too_many_jobs");
    const queueName = flowQueue(config, node.queue, path);
    const opts = checkJob(node, path, registry, queueName);
    const id = newId();
    const job: PlannedJob = {
      id,
      jobId: id,
      parentId: parent?.id ?? null,
      name: node.name,
      queueName,
      data: node.data ?? {},
      opts,
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
