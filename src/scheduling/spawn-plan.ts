/**
 * Jobs a running job adds to its own graph flow (a spawn), checked whole against the flow as it is
 * before anything is written. The same rules as a create, over the flow's keys: a key is new to the
 * flow, dependencies name the flow's jobs or jobs of the same spawn (so no cycle can reach the jobs
 * already there: they cannot depend on what did not exist), at most EDGES_PER_JOB per added job,
 * and the flow stays within FLOWD_MAX_FLOW_JOBS. A key this spawner added before is its job again:
 * a handler that runs again after a join adds the same jobs without adding anything twice.
 */
import type { Config } from "../config";
import { InvalidInput } from "../errors";
import type { FlowKeyRow } from "../db/queries/spawn";
import { BUILTINS, refusal } from "../services/flow-spec";
import type { HandlerCheck } from "../services/handler-registry";
import { EDGES_PER_JOB, KEY_PATTERN, layers, planGraphJob, type GraphJobInput, type PlannedGraphJob } from "./graph-plan";


export type { FlowKeyRow };

export interface SpawnPlan {
  /** New rows, in the order given. */
  added: PlannedGraphJob[];
  /** Jobs this spawner added before under the same keys (a handler run again): nothing new is written for them. */
  again: FlowKeyRow[];
}

/** A dependency that already ended this way lets its dependents run (see graph-release.ts). */
const lets = (row: FlowKeyRow) =>
  row.status === "completed" || (row.status === "failed" && (row.opts.ignoreDependencyOnFailure === true || row.opts.continueParentOnFailure === true));
const ENDED = new Set(["completed", "failed", "cancelled"]);

type SpawnConfig = Pick<Config, "flowQueues" | "maxFlowJobs"> & Partial<Pick<Config, "externalQueues">>;

const at = (i: number, key?: string) => `/jobs/${i}${key === undefined ? "" : ` (key '${key}')`}`;

export function planSpawn(
  jobs: GraphJobInput[],
  flow: FlowKeyRow[],
  spawnerId: string,
  config: SpawnConfig,
  registry: HandlerCheck = BUILTINS,
): SpawnPlan {
  if (jobs.length === 0) throw refusal("invalid_input", "/jobs", "A spawn needs at least one job in /jobs.");
  const existing = new Map(flow.flatMap((r) => (r.key === null ? [] : [[r.key, r] as const])));
  const inBatch = new Map<string, number>();
  const again: FlowKeyRow[] = [];
  const fresh: { job: GraphJobInput; i: number }[] = [];
  jobs.forEach((job, i) => {
    if (!KEY_PATTERN.test(job.key))
      throw refusal("invalid_key", `/jobs/${i}/key`, `At ${at(i)}/key the key must match [A-Za-z0-9_.-]{1,64}; got '${job.key.slice(0, 80)}'.`);
    const first = inBatch.get(job.key);
    if (first !== undefined) throw refusal("duplicate_key", `/jobs/${i}/key`, `At ${at(i, job.key)}: the key is already used by /jobs/${first}.`);
    inBatch.set(job.key, i);
    const there = existing.get(job.key);
    if (there && there.spawnedBy !== spawnerId)
      throw refusal("duplicate_key", `/jobs/${i}/key`, `At ${at(i, job.key)}: the flow already has a job with this key (not one this job added).`);
    if (there) again.push(there);
    else fresh.push({ job, i });
  });
  if (flow.length + fresh.length > config.maxFlowJobs)
    throw refusal(
      "too_many_jobs",
      "/jobs",
      `The flow would have ${flow.length + fresh.length} jobs, more than ${config.maxFlowJobs} (FLOWD_MAX_FLOW_JOBS); it has ${flow.length}.`,
    );
  let edges = 0;
  for (const { job, i } of fresh) {
    const seen = new Set<string>();
    (job.dependsOn ?? []).forEach((dep, j) => {
      const path = `/jobs/${i}/dependsOn/${j}`;
      if (dep === job.key) throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: a job cannot depend on itself.`);
      if (seen.has(dep)) throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: dependsOn names '${dep}' twice.`);
      seen.add(dep);
      const there = existing.get(dep);
      if (!there && !inBatch.has(dep))
        throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: dependsOn names '${dep}', which is neither a job of the flow nor of this spawn.`);
      if (there && ENDED.has(there.status) && !lets(there))
        throw refusal("invalid_dependency", path, `At ${at(i, job.key)}: dependsOn names '${dep}', which ${there.status === "failed" ? "failed" : "was cancelled"}; the job could never run.`);
    });
    edges += seen.size;
  }
  if (edges > EDGES_PER_JOB * fresh.length)
    throw refusal("too_many_edges", "/jobs", `The spawn has ${edges} dependencies, more than ${EDGES_PER_JOB} per added job (${EDGES_PER_JOB * fresh.length}).`);
  return { added: plan(fresh, existing, config, registry), again };
}

/** Rows for the new jobs: ids, queues, handlers checked, each held while a dependency is not done, or else by its limits. */
function plan(
  fresh: { job: GraphJobInput; i: number }[],
  existing: Map<string, FlowKeyRow>,
  config: SpawnConfig,
  registry: HandlerCheck,
): PlannedGraphJob[] {
  // Cycles can only run through this spawn's new jobs: ordered among themselves, with the jobs
  // already in the flow as a layer above (their depths carry on).
  const newKeys = new Set(fresh.map((f) => f.job.key));
  const local = fresh.map(({ job }) => ({ ...job, dependsOn: (job.dependsOn ?? []).filter((k) => newKeys.has(k)) }));
  const localIndex = new Map(local.map((job, n) => [job.key, n]));
  const depth = inRequestOrder(fresh, () => layers(local, localIndex));
  const planned = fresh.map(({ job, i }, n) => {
    const above = Math.max(0, ...(job.dependsOn ?? []).map((k) => existing.get(k)?.depth ?? 0));
    // As for a graph's jobs at creation: dependencies first, then the job's per-key limits (if any).
    const held = (job.dependsOn ?? []).some((k) => !existing.has(k) || !lets(existing.get(k)!));
    return planGraphJob(job, i, above + depth[n]!, held, config, registry);
  });
  const ids = new Map(planned.map((p) => [p.key, p.id]));
  fresh.forEach(({ job }, n) => (planned[n]!.dependsOn = (job.dependsOn ?? []).map((k) => ids.get(k) ?? existing.get(k)!.id)));
  return planned;
}

/** layers() names a cycle's first job by its index among the new jobs: named here by its index in the request. */
function inRequestOrder<T>(fresh: { job: GraphJobInput; i: number }[], fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof InvalidInput) || err.code !== "dependency_cycle") throw err;
    const [detail] = err.details as [{ path: string; message: string; keys: string[] }];
    const i = fresh.find((f) => f.job.key === detail.keys[0])?.i ?? 0;
    throw new InvalidInput(err.message, [{ ...detail, path: `/jobs/${i}/dependsOn` }], err.code);
  }
}
