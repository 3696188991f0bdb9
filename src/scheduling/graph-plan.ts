/**
 * The graph form of a flow: jobs named by key, each running once the jobs it depends on are done.
 * Validated whole before anything is written; each job is planned with what decides whether it
 * may enter Redis at once (no dependencies) or is held until they are done (`waitingFor`).
 */
import type { Config } from "../config";
import { InvalidInput } from "../errors";
import { newId } from "../ids";
import type { JobOpts } from "../job-opts";
import type { HandlerCheck } from "../services/handler-registry";
import type { WaitingReason } from "./waiting-for";
import { BUILTINS, checkJob, flowQueue, refusal, type PlannedJob } from "../services/flow-spec";
import { limitFields } from "./limits";

/** What a client sends for one job of a graph flow (the route's schema has already checked shapes). */
export interface GraphJobInput {
  key: string;
  name: string;
  queue?: string;
  data?: Record<string, unknown>;
  opts?: JobOpts;
  dependsOn?: string[];
}

/** Why a graph job with dependencies is held out of Redis (see waiting-for.ts). */
export const WAITING_FOR_DEPENDENCIES = "dependencies" satisfies WaitingReason;

/** Edges a graph may have per job: enough for any real fan-in, bounded so one request cannot explode. */
export const EDGES_PER_JOB = 10;

export const KEY_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export type PlannedGraphJob = PlannedJob & { key: string; dependsOn: string[]; waitingFor: string | null };

type GraphConfig = Pick<Config, "flowQueues" | "maxFlowJobs"> & Partial<Pick<Config, "externalQueues">>;

const at = (i: number, key?: string) => `/jobs/${i}${key === undefined ? "" : ` (key '${key}')`}`;

/** Checks keys, dependencies, limits and each job's handler; plans rows in the order given, ids assigned. */
export function planGraph(jobs: GraphJobInput[], config: GraphConfig, registry: HandlerCheck = BUILTINS): PlannedGraphJob[] {
  if (jobs.length === 0) throw refusal("invalid_input", "/jobs", "A graph flow needs at least one job in /jobs.");
  if (jobs.length > config.maxFlowJobs)
    throw refusal("too_many_jobs", "/jobs", `The flow has ${jobs.length} jobs, more than ${config.maxFlowJobs} (FLOWD_MAX_FLOW_JOBS).`);
  const index = new Map<string, number>();
  jobs.forEach((job, i) => {
    if (!KEY_PATTERN.test(job.key))
      throw refusal("invalid_key", `/jobs/${i}/key`, `At ${at(i)}/key the key must match [A-Za-z0-9_.-]{1,64}; got '${job.key.slice(0, 80)}'.`);
    const first = index.get(job.key);
    if (first !== undefined) throw refusal("duplicate_key", `/jobs/${i}/key`, `At ${at(i, job.key)}: the key is already used by /jobs/${first}.`);
    index.set(job.key, i);
  });
  let edges = 0;
  jobs.forEach((job, i) => {
    const seen = new Set<string>();
    (job.dependsOn ?? []).forEach((dep, j) => {
      const path = `/jobs/${i}/dependsOn/${j}`;
      if (dep === job.key) throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: a job cannot depend on itself.`);
      if (!index.has(dep)) throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: dependsOn names '${dep}', which is no job's key.`);
      if (seen.has(dep)) throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: dependsOn names '${dep}' twice.`);
      seen.add(dep);
    });
    edges += seen.size;
  });
  if (edges > EDGES_PER_JOB * jobs.length)
    throw refusal("too_many_edges", "/jobs", `The flow has ${edges} dependencies, more than ${EDGES_PER_JOB} per job (${EDGES_PER_JOB * jobs.length}).`);
  const depth = layers(jobs, index);
  // Dependencies first; a job under per-key limits then waits its turn (graph-release.ts).
  const planned = jobs.map((job, i) => planGraphJob(job, i, depth[i]!, (job.dependsOn ?? []).length > 0, config, registry));
  jobs.forEach((job, i) => (planned[i]!.dependsOn = (job.dependsOn ?? []).map((k) => planned[index.get(k)!]!.id)));
  return planned;
}

/**
 * One job of a graph as its row is written: handler and data checked at /jobs/<i>, a fresh id;
 * `dependsOn` is filled in by the caller. Held for its dependencies when `held`, else by its
 * per-key limits (its own opts over its handler's defaults), if any.
 */
export function planGraphJob(
  job: GraphJobInput,
  i: number,
  depth: number,
  held: boolean,
  config: Pick<Config, "flowQueues"> & Partial<Pick<Config, "externalQueues">>,
  registry: HandlerCheck,
): PlannedGraphJob {
  const queueName = flowQueue(config, job.queue, `/jobs/${i}`);
  const opts = checkJob(job, `/jobs/${i}`, registry, queueName);
  const waitingFor = held ? WAITING_FOR_DEPENDENCIES : limitFields(opts).waitingFor;
  const id = newId();
  return {
    id,
    jobId: id,
    parentId: null,
    name: job.name,
    queueName,
    data: job.data ?? {},
    opts,
    depth,
    children: [],
    key: job.key,
    dependsOn: [],
    waitingFor,
  };
}

/**
 * Each job's layer (1 + the longest chain of dependencies above it), by Kahn's algorithm; jobs left
 * over sit on or behind a cycle, and one cycle among them is named in the refusal.
 */
export function layers(jobs: GraphJobInput[], index: Map<string, number>): number[] {
  const dependents: number[][] = jobs.map(() => []);
  const missing = jobs.map((job) => (job.dependsOn ?? []).length);
  jobs.forEach((job, i) => (job.dependsOn ?? []).forEach((k) => dependents[index.get(k)!]!.push(i)));
  const depth = jobs.map(() => 1);
  const ready = jobs.flatMap((_, i) => (missing[i] === 0 ? [i] : []));
  for (let n = 0; n < ready.length; n++) {
    const i = ready[n]!;
    for (const d of dependents[i]!) {
      depth[d] = Math.max(depth[d]!, depth[i]! + 1);
      if (--missing[d]! === 0) ready.push(d);
    }
  }
  if (ready.length < jobs.length) {
    const cycle = findCycle(jobs, index, missing);
    const i = index.get(cycle[0]!)!;
    throw new InvalidInput(
      `The jobs form a cycle: ${[...cycle, cycle[0]].join(" → ")}; a graph flow must have none.`,
      [{ path: `/jobs/${i}/dependsOn`, message: `cycle: ${[...cycle, cycle[0]].join(" → ")}`, keys: cycle }],
      "dependency_cycle",
    );
  }
  return depth;
}

/** A cycle among the jobs Kahn's algorithm could not order (each has a dependency among them). */
function findCycle(jobs: GraphJobInput[], index: Map<string, number>, missing: number[]): string[] {
  let i = missing.findIndex((m) => m > 0);
  const path: number[] = [];
  const onPath = new Map<number, number>();
  // Following any unordered dependency from an unordered job always meets an unordered job again.
  while (!onPath.has(i)) {
    onPath.set(i, path.length);
    path.push(i);
    i = (jobs[i]!.dependsOn ?? []).map((k) => index.get(k)!).find((d) => missing[d]! > 0)!;
  }
  return path.slice(onPath.get(i)!).reverse().map((n) => jobs[n]!.key);
}
