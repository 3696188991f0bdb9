/**
 * Jobs a running job adds to its own graph flow, and joins on them: the use-cases behind a module
 * handler's `ctx.spawn` / `ctx.waitFor` and `POST /v1/jobs/:id/spawn`.
 *
 * A join parks the job the way a parked http task is parked: BullMQ holds it as delayed (no worker
 * slot) while its row stays `active` with `waiting_for` = `children` and `waits_on` = what it waits
 * for. The recorder's batch that ends the last of those wakes it (graph-release.ts: `woken`, promoted
 * after the commit by src/scheduling/release.ts), and the job runs again from the start of its
 * handler: spawning the same keys again returns the jobs already added, and the join answers at once
 * with their results (re-entry, like BullMQ's step pattern). A wake the batch missed (the park
 * committed while the last end was being recorded) is caught by the parking side's second look
 * (parkOnJoin) and the enqueuer (wakeStaleJoins); one lost with Redis, by the park's own deadline
 * (JOIN_RECHECK_MS), after which the job looks again and parks again if the join is not over.
 */
import { Job } from "bullmq";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { endJoinWait, findSpawner, unparkJoined, flowKeyRows, insertSpawned, jobsById, jobsByKey, lockFlowForSpawn, parkForJoin, type JoinRow, type SpawnerRow } from "../db/queries/spawn";
import { freshJobState } from "../db/schema/columns";
import { AppError, Conflict, InvalidInput, NotFound } from "../errors";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { attemptsOf, lockTokenOf } from "./bull-data";
import type { GraphJobInput } from "../scheduling/graph-plan";
import { addLimitReleased, ensureKeysWithin, noRelease, releaseWithin, ringSweepers, type LimitRelease } from "../scheduling/limit-release";
import { limitFields } from "../scheduling/limits";
import { planSpawn } from "../scheduling/spawn-plan";
import { FINISHED_STATUSES } from "../statuses";
import type { HandlerCheck } from "./handler-registry";

/** How long a parked join sleeps before it looks again by itself, should its wake-up be lost. */
export const JOIN_RECHECK_MS = 60_000;

export type SpawnDeps = {
  db: Db;
  producer: Producer;
  log: Logger;
  config: Pick<Config, "flowQueues" | "maxFlowJobs" | "externalQueues" | "prefix">;
  registry?: HandlerCheck;
};

/** One job of a spawn's answer: `added` false when this spawner had added it already (a run again). */
export interface SpawnedJob {
  key: string;
  id: string;
  jobId: string;
  status: string;
  added: boolean;
}

const ENDED: ReadonlySet<string> = new Set(FINISHED_STATUSES);

export class AttemptEnded extends AppError {
  constructor(detail: string) {
    super(409, "attempt_ended", `The job's attempt is not running (${detail}); only a running attempt may add jobs to its flow or join on them.`);
  }
}

/** A spawn only adds to graph flows: a tree's jobs each have one parent fixed at creation. */
function refuseUnsupported(spawner: SpawnerRow) {
  if (!spawner.graph)
    throw new Conflict("not_a_graph", "Only a job of a graph flow (created with `jobs`) can add jobs to its flow; this job belongs to a tree flow.");
  if (spawner.flowStatus !== "running") throw new AttemptEnded(`its flow is ${spawner.flowStatus}`);
  if (ENDED.has(spawner.status)) throw new AttemptEnded(`the job is ${spawner.status}`);
}

/**
 * Adds `jobs` to the spawner's flow (all or nothing) and puts those with nothing to wait for into
 * Redis. Jobs naming per-key limits are held like a graph's at creation (src/scheduling/limits.ts):
 * under the user's lock, in the spawn's transaction, their keys get settings where they have none,
 * and a release pass lets go what the limits allow now; the rest wait their turn, `pending`, for a
 * later pass. (The flow's row is locked first, then the user's limits: a pass never locks a flow's
 * row, so the two orders cannot deadlock.)
 */
export async function spawnJobs(deps: SpawnDeps, spawner: SpawnerRow, jobs: GraphJobInput[]): Promise<SpawnedJob[]> {
  refuseUnsupported(spawner);
  const { plan, released } = await deps.db.transaction(async (tx) => {
    const flow = await lockFlowForSpawn(tx, spawner.flowId);
    if (!flow || flow.status !== "running") throw new AttemptEnded(`its flow is ${flow?.status ?? "deleted"}`);
    const rows = await flowKeyRows(tx, spawner.flowId);
    const self = rows.find((r) => r.id === spawner.id);
    if (!self || ENDED.has(self.status)) throw new AttemptEnded(`the job is ${self?.status ?? "deleted"}`);
    const plan = planSpawn(jobs, rows, spawner.id, deps.config, deps.registry);
    const now = new Date();
    const added = plan.added.map((p) => ({ p, limits: limitFields(p.opts) }));
    const limited = added.some(({ limits }) => limits.concurrencyKeys !== null || limits.rateKey !== null);
    if (limited) await ensureKeysWithin(tx, spawner.userId, plan.added.map((p) => p.opts));
    if (added.length > 0)
      await insertSpawned(
        tx,
        spawner.flowId,
        added.map(({ p, limits }) => ({
          id: p.id,
          jobId: p.jobId,
          userId: spawner.userId,
          flowId: spawner.flowId,
          parentId: null,
          name: p.name,
          queueName: p.queueName,
          shard: spawner.shard,
          data: p.data,
          opts: p.opts,
          ...freshJobState(now),
          children: [],
          depth: p.depth,
          key: p.key,
          dependsOn: p.dependsOn,
          waitingFor: p.waitingFor,
          spawnedBy: spawner.id,
          concurrencyKeys: limits.concurrencyKeys,
          rateKey: limits.rateKey,
        })),
      );
    const released: LimitRelease = limited ? await releaseWithin(tx, spawner.userId) : noRelease();
    return { plan, released };
  });
  const ready = plan.added.filter((p) => !p.waitingFor).map((p) => p.id);
  await ringSweepers(deps, deps.config.prefix, released);
  // Its own jobs the pass let go go in with those nothing held (and any other job the pass let go).
  await addLimitReleased(deps, { ...released, flowJobs: [...ready, ...released.flowJobs] });
  const byKey = new Map<string, SpawnedJob>(plan.added.map((p) => [p.key, { key: p.key, id: p.id, jobId: p.jobId, status: "pending", added: true }]));
  for (const r of plan.again) byKey.set(r.key!, { key: r.key!, id: r.id, jobId: r.jobId, status: r.status, added: false });
  return jobs.map((j) => byKey.get(j.key)!);
}

/** What a join found: every job it names ended (with their results by key), or some still run. */
export type JoinState =
  | { done: true; results: Record<string, unknown>; failed: { key: string; status: string; error: unknown }[] }
  | { done: false; waitIds: string[] };

/**
 * The jobs `keys` name in the spawner's flow, and whether all have ended. Refused: a key that is no
 * job of the flow, the spawner itself, or a job that waits (through its dependencies) for the
 * spawner — it could only run after the join it would have to end.
 */
export async function joinState(db: Db, spawner: SpawnerRow, keys: string[], path = "/waitFor"): Promise<JoinState> {
  const unique = [...new Set(keys)];
  const rows = await jobsByKey(db, spawner.flowId, unique);
  const found = new Map(rows.map((r) => [r.key!, r]));
  keys.forEach((k, i) => {
    if (!found.has(k)) throw refusal(`${path}/${i}`, `waitFor names '${k}', which is no job of the flow.`);
    if (found.get(k)!.id === spawner.id) throw refusal(`${path}/${i}`, `waitFor names '${k}', the job itself.`);
  });
  await refuseDeadlock(db, spawner, rows, keys, path);
  return stateOf(rows);
}

export function stateOf(rows: JoinRow[]): JoinState {
  if (rows.some((r) => !ENDED.has(r.status))) return { done: false, waitIds: rows.map((r) => r.id) };
  const results: Record<string, unknown> = {};
  const failed: { key: string; status: string; error: unknown }[] = [];
  for (const r of rows) {
    if (r.status === "completed") results[r.key ?? r.id] = r.result ?? null;
    else failed.push({ key: r.key ?? r.id, status: r.status, error: r.error });
  }
  return { done: true, results, failed };
}

const refusal = (path: string, message: string) => new InvalidInput(message, [{ path, message }], "invalid_join");

/** A job downstream of the spawner runs only once the spawner completed: joining on it would never end. */
async function refuseDeadlock(db: Db, spawner: SpawnerRow, waited: JoinRow[], keys: string[], path: string) {
  const [first] = await downstreamOf(db, spawner.id, waited.map((w) => w.id));
  if (first) {
    const key = waited.find((w) => w.id === first)?.key ?? first;
    throw refusal(`${path}/${keys.indexOf(key)}`, `waitFor names '${key}', which depends (directly or through others) on the job itself: the join could never end.`);
  }
}

/** Which of `ids` depend, directly or through others, on the job `spawnerId`. */
async function downstreamOf(db: Db, spawnerId: string, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db.$client<{ id: string }[]>`
    with recursive up(id, origin) as (
      select j.id, j.id from flow_jobs j where j.id in ${db.$client(ids)}
      union
      select dep.id, up.origin from up join flow_jobs j on j.id = up.id, jsonb_array_elements_text(coalesce(j.depends_on, '[]'::jsonb)) as dep(id)
    )
    select distinct origin as id from up where up.id = ${spawnerId}`;
  return rows.map((r) => r.id);
}

/**
 * Parks a running attempt on a join (see the top of this file). `move` puts the BullMQ job into the
 * delayed set until `until` with the attempt's lock token; after it, a join that ended meanwhile
 * (before the park was visible to the recorder) wakes the job at once.
 */
export async function parkOnJoin(
  deps: { db: Db },
  spawner: Pick<SpawnerRow, "id">,
  waitIds: string[],
  attempt: number,
  move: (until: number) => Promise<void>,
  wake: () => Promise<void>,
) {
  const until = Date.now() + JOIN_RECHECK_MS;
  if (!(await parkForJoin(deps.db, { id: spawner.id, waitIds, until: new Date(until), attempt }))) throw new AttemptEnded("the job ended");
  try {
    await move(until);
  } catch (err) {
    // BullMQ refused (the lock is not this attempt's any more): the job is not parked after all.
    await unparkJoined(deps.db, spawner.id);
    throw new AttemptEnded(`BullMQ would not park it: ${(err as Error)?.message ?? String(err)}`);
  }
  if (stateOf(await jobsById(deps.db, waitIds)).done) await wake().catch(() => {});
}

/**
 * A parked join's wake-up (or its recheck): true when what it waits for has ended — the wait is
 * over and the handler runs again — false when it must park again.
 */
export async function joinEnded(db: Db, spawner: Pick<SpawnerRow, "id" | "waitsOn">): Promise<boolean> {
  if (!(stateOf(await jobsById(db, spawner.waitsOn ?? [])).done)) return false;
  await endJoinWait(db, spawner.id);
  return true;
}

/** The BullMQ job of a flow job row, for moving or promoting it from outside its worker. */
export const bullJob = (producer: Producer, row: Pick<SpawnerRow, "shard" | "queueName" | "jobId">) =>
  new Job(producer.at(row.shard).queue(row.queueName), "", {}, {}, row.jobId);

/**
 * A spawn or join through the REST route: the job's user, and a token only its running attempt
 * holds — the BullMQ lock token a worker processes the job under (`token` in a Node processor,
 * `job.token`): it is in Redis only while that attempt runs.
 */
export async function authoriseAttempt(deps: { db: Db; producer: Producer }, userId: string, id: string, lockToken: string): Promise<SpawnerRow> {
  const spawner = await findSpawner(deps.db, id);
  if (!spawner || spawner.userId !== userId) throw new NotFound("flow job", id);
  const held = await lockTokenOf(deps.producer, spawner.shard, spawner.queueName, spawner.jobId);
  if (held === null || held !== lockToken) throw new AttemptEnded(held === null ? "no worker holds it now" : "the token is not its running attempt's lock token");
  return spawner;
}

/** `POST /v1/jobs/:id/spawn`: what a worker that is not flowd's sends. */
export interface SpawnRequest {
  lockToken: string;
  jobs?: GraphJobInput[];
  waitFor?: string[];
}

export interface SpawnAnswer {
  jobs: SpawnedJob[];
  /** True: the API parked the job on the join; the worker must end this run without completing it (BullMQ: throw DelayedError). */
  parked: boolean;
  results?: Record<string, unknown>;
  failed?: { key: string; status: string; error: unknown }[];
}

/**
 * A spawn and/or join from a worker flowd does not run (your own BullMQ worker), authorised by the
 * attempt's lock token. Everything is checked before anything is written: the join's keys must be
 * jobs of the flow or of this spawn. Parking moves the job to delayed with the same token, which
 * BullMQ accepts only from the attempt that holds the lock.
 */
export async function spawnForAttempt(deps: SpawnDeps, userId: string, id: string, body: SpawnRequest): Promise<SpawnAnswer> {
  if (!body.jobs && !body.waitFor) throw new InvalidInput("Send jobs to add, waitFor to join on, or both.", [{ path: "/jobs", message: "jobs or waitFor is required" }], "invalid_input");
  const spawner = await authoriseAttempt(deps, userId, id, body.lockToken);
  refuseUnsupported(spawner);
  if (body.waitFor) await checkJoinKeys(deps.db, spawner, body.waitFor, body.jobs ?? []);
  const jobs = body.jobs ? await spawnJobs(deps, spawner, body.jobs) : [];
  if (!body.waitFor) return { jobs, parked: false };
  const state = await joinState(deps.db, spawner, body.waitFor);
  if (state.done) return { jobs, parked: false, results: state.results, failed: state.failed };
  const attempt = await attemptsOf(deps.producer, spawner.shard, spawner.queueName, spawner.jobId);
  const job = bullJob(deps.producer, spawner);
  await parkOnJoin(deps, spawner, state.waitIds, attempt, (until) => job.moveToDelayed(until, body.lockToken), () => job.promote());
  return { jobs, parked: true };
}

/** A join's keys, checked before a spawn writes: each names a job of the flow or of the spawn, not the job itself. */
async function checkJoinKeys(db: Db, spawner: SpawnerRow, keys: string[], jobs: GraphJobInput[]) {
  const rows = await flowKeyRows(db, spawner.flowId);
  const byKey = new Map(rows.flatMap((r) => (r.key === null ? [] : [[r.key, r] as const])));
  const own = rows.find((r) => r.id === spawner.id)?.key ?? null;
  const added = new Map(jobs.filter((j) => !byKey.has(j.key)).map((j) => [j.key, j]));
  // The flow's jobs each waited-for key waits for, itself or through jobs of this spawn: none may wait for the spawner.
  const waitedBy = new Map<string, number>();
  for (const [i, k] of keys.entries()) {
    if (k === own) throw refusal(`/waitFor/${i}`, `waitFor names '${k}', the job itself.`);
    if (!byKey.has(k) && !added.has(k)) throw refusal(`/waitFor/${i}`, `waitFor names '${k}', which is no job of the flow nor of this spawn.`);
    const seen = new Set<string>([k]);
    const todo = [k];
    while (todo.length > 0) {
      const at = todo.pop()!;
      const job = added.get(at);
      if (!job) {
        const id = byKey.get(at)?.id;
        if (id === spawner.id) throw deadlock(i, k);
        if (id !== undefined && !waitedBy.has(id)) waitedBy.set(id, i);
      }
      for (const d of job?.dependsOn ?? []) {
        if (seen.has(d)) continue;
        seen.add(d);
        todo.push(d);
      }
    }
  }
  const [first] = await downstreamOf(db, spawner.id, [...waitedBy.keys()]);
  if (first) throw deadlock(waitedBy.get(first)!, keys[waitedBy.get(first)!]!);
}

const deadlock = (i: number, key: string) =>
  refusal(`/waitFor/${i}`, `waitFor names '${key}', which depends (directly or through others) on the job itself: the join could never end.`);
