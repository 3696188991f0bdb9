import { Value } from "@sinclair/typebox/value";
import type { Config } from "../config";
import { InvalidInput } from "../errors";
import { handlers, isHandlerName, HANDLER_NAMES } from "../handlers/catalog";
import { newId } from "../ids";

/** What a client sends for one job of a flow (the route's schema has already checked shapes). */
export interface NodeInput {
  name: string;
  queue?: string;
  data?: Record<string, unknown>;
  opts?: JobOpts;
  children?: NodeInput[];
}

export interface JobOpts {
  attempts?: number;
  backoff?: { type: "fixed" | "exponential"; delay: number };
  delay?: number;
  priority?: number;
  failParentOnFailure?: boolean;
  ignoreDependencyOnFailure?: boolean;
  continueParentOnFailure?: boolean;
  removeDependencyOnFailure?: boolean;
}

/** One validated job of a flow, with its ids assigned before anything is written. */
export interface PlannedJob {
  id: string;
  jobId: string;
  parentId: string | null;
  name: string;
  queueName: string;
  data: Record<string, unknown>;
  opts: JobOpts;
  depth: number;
  /** Row ids of the direct children, in the order given. */
  childIds: string[];
}

const POLICY_KEYS = ["failParentOnFailure", "ignoreDependencyOnFailure", "continueParentOnFailure", "removeDependencyOnFailure"] as const;

/** Checks a job's name, data and opts against the handler catalog; shared by flows and single jobs. */
export function checkJob(node: { name: string; data?: unknown; opts?: JobOpts }, path: string) {
  if (!isHandlerName(node.name))
    throw new InvalidInput(`Unknown handler '${node.name}' at ${path}; known handlers: ${HANDLER_NAMES.join(", ")}.`, { path }, "unknown_handler");
  const data = node.data ?? {};
  const schema = handlers[node.name].data;
  if (!Value.Check(schema, data)) {
    const first = Value.Errors(schema, data).First();
    throw new InvalidInput(
      `Invalid data for handler '${node.name}' at ${path}/data${first?.path ?? ""}: ${first?.message ?? "does not match"}.`,
      { path: `${path}/data${first?.path ?? ""}` },
      "invalid_job_data",
    );
  }
  const policies = POLICY_KEYS.filter((k) => node.opts?.[k] === true);
  if (policies.length > 1)
    throw new InvalidInput(`At ${path}/opts choose at most one failure policy; got ${policies.join(" and ")}.`, { path: `${path}/opts` });
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
      throw new InvalidInput(`Unknown queue '${queueName}' at ${path}/queue; this deployment accepts ${config.flowQueues.join(", ")} (FLOWD_QUEUES).`, { path: `${path}/queue` }, "unknown_queue");
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
      childIds: [],
    };
    parent?.childIds.push(job.id);
    planned.push(job);
    (node.children ?? []).forEach((child, i) => visit(child, job, depth + 1, `${path}/children/${i}`));
  };
  visit(root, null, 1, "/root");
  return planned;
}
