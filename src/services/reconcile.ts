import { bumpGeneration, failLostJobs, flowJobsOf, flowsWithQueuedJobs, type FlowJobRow } from "../db/queries/flows";
import { queuedJobs } from "../db/queries/jobs";
import { jobsByIds, readyLostRows } from "../db/queries/lost-jobs";
import { QUEUED_STATUSES } from "../statuses";
import { bullKey } from "../queues";
import type { ServiceDeps } from "./deps";
import { addTrees, enqueueRows } from "./enqueue";
import { buildRedisTrees } from "./flow-redis";
import { enqueueJobs } from "./jobs";
import type { TrackedTable } from "../db/queries/status";
import { writeStates } from "./converge";
import { eventStreamKey, parseStreamInfo } from "./event-streams";
import { isFinishedInRedis, readJobStates, type JobRef } from "./redis-job-state";
import { shardPrefix, type Shard } from "../shards";

const QUEUED = new Set<string>(QUEUED_STATUSES);
const FLOWS_PER_PASS = 100;
const STRANDED_REASON = "Redis lost this job after its parent stopped waiting for it, so it never ran; retry the flow to run it.";

export interface Repairs {
  /** Flows whose queued jobs were all gone: their unfinished part was added again under new ids. */
  flowsRebuilt: number;
  /** Flow jobs re-added under their own ids, under parents still waiting for them. */
  subtreesRestored: number;
  /** Single jobs queued again. */
  jobsRequeued: number;
  /** Lost flow jobs no parent waits for any more (it ran or was released without them): ended as failed. */
  stranded: number;
  /** Jobs finished in Redis that Postgres still held as unfinished (their events never recorded): given Redis's outcome. */
  finishedRecorded: number;
}

export const noRepairs = (): Repairs => ({ flowsRebuilt: 0, subtreesRestored: 0, jobsRequeued: 0, stranded: 0, finishedRecorded: 0 });

type Deps = Pick<ServiceDeps, "db" | "producer" | "log" | "config">;

/** Sends the commands in one round trip; each reply is `[error, value]`. */
async function ask(deps: Deps, commands: string[][], what: string): Promise<[Error | null, unknown][]> {
  const replies = await deps.producer.redis.pipeline(commands).exec();
  if (!replies) throw new Error(`Redis gave no answer to the ${what}`);
  return replies;
}

type ShardRef = JobRef & { shard: Shard };

/** The key prefix a row's jobs were added under: its stored shard's, whatever FLOWD_SHARDS says now. */
const prefixOf = (deps: Deps, row: { shard: Shard }) => shardPrefix(deps.config.prefix, row.shard);

const jobKey = (deps: Deps, row: { queueName: string; jobId: string; shard: Shard }, ...parts: string[]) =>
  bullKey(prefixOf(deps, row), row.queueName, row.jobId, ...parts);

/** statesInRedis over rows of any shards: one pipeline per shard, as a cluster needs (one slot each). */
async function statesInRedis(deps: Deps, table: TrackedTable, rows: ShardRef[], repairs: Repairs): Promise<boolean[]> {
  const present = new Array<boolean>(rows.length);
  for (const shard of new Set(rows.map((r) => r.shard))) {
    const at = rows.flatMap((r, i) => (r.shard === shard ? [i] : []));
    const states = await shardStatesInRedis(deps, table, shard, at.map((i) => rows[i]!), repairs);
    at.forEach((i, j) => (present[i] = states[j]!));
  }
  return present;
}

/**
 * Redis's state of each job of one shard (null: Redis no longer has it). Jobs Redis finished while
 * Postgres still has them unfinished (their events were trimmed or lost) get Redis's outcome
 * written, positioned at their stream's newest entry read before the states, so any later event still applies.
 */
async function shardStatesInRedis(deps: Deps, table: TrackedTable, shard: Shard, rows: JobRef[], repairs: Repairs): Promise<boolean[]> {
  const prefix = shardPrefix(deps.config.prefix, shard);
  const queues = [...new Set(rows.map((r) => r.queueName))];
  const infos = await ask(deps, queues.map((q) => ["xinfo", "STREAM", eventStreamKey(prefix, q)]), "stream check");
  const states = await readJobStates(deps.producer.redis, prefix, rows);
  for (const [i, queue] of queues.entries()) {
    const finished = rows.flatMap((r, j) => (r.queueName === queue && isFinishedInRedis(states[j]!) ? [j] : []));
    if (finished.length === 0) continue;
    const at = parseStreamInfo(infos[i]?.[1])?.lastGeneratedId ?? "0-0";
    repairs.finishedRecorded += await writeStates(deps, table, finished.map((j) => rows[j]!), finished.map((j) => states[j]!), at);
  }
  return states.map((state) => state !== null);
}

/**
 * Repairs what Redis lost while Postgres still expects it (keys deleted or evicted, one queue
 * obliterated, a Redis without its data). Completed jobs are never run again: their results reach
 * their parents through the envelope.
 * - A flow whose queued jobs are all gone has its unfinished part added again under new ids.
 * - A flow that lost some of its jobs gets each lost subtree added again under the same ids, tied
 *   to the parent that still waits for it; its jobs Redis still has are re-linked, not re-run.
 * - A single job that is gone is queued again under a new id.
 * Each lost job is added as it stood (see readyLostRows and resumeOptions): a delayed one for what
 * is left of its delay, attempts that ended still counted, a parked http task still parked.
 */
export async function reconcileLostJobs(deps: Deps, graceMs: number, page: { after: string } = { after: "" }): Promise<Repairs> {
  const repairs = noRepairs();
  const flowIds = await flowsWithQueuedJobs(deps.db, graceMs, FLOWS_PER_PASS, page.after);
  // The next pass goes on after this page, and starts over once it reaches the end.
  page.after = flowIds.length === FLOWS_PER_PASS ? flowIds[flowIds.length - 1]! : "";
  for (const flowId of flowIds) {
    const rows = await flowJobsOf(deps.db, flowId);
    const queued = rows.filter((r) => QUEUED.has(r.status));
    const present = await statesInRedis(deps, "flow_jobs", queued, repairs);
    if (present.every(Boolean)) continue;
    if (present.some(Boolean)) {
      const lost = new Set(queued.filter((_, i) => !present[i]).map((r) => r.id));
      const { restored, stranded } = await restoreLostSubtrees(deps, rows, lost);
      repairs.subtreesRestored += restored;
      repairs.stranded += stranded;
      continue;
    }
    await rebuildFlow(deps, flowId, queued);
    repairs.flowsRebuilt++;
  }
  repairs.jobsRequeued += await requeueLostJobs(deps, graceMs, repairs);
  if (Object.values(repairs).some((n) => n > 0)) deps.log.warn("repaired jobs Redis had lost", { ...repairs });
  return repairs;
}

/** Single jobs gone from Redis, queued again under new ids (a stale copy of the old one never runs). */
async function requeueLostJobs(deps: Deps, graceMs: number, repairs: Repairs): Promise<number> {
  const jobs = await queuedJobs(deps.db, graceMs, 500);
  const present = jobs.length > 0 ? await statesInRedis(deps, "jobs", jobs, repairs) : [];
  const lost = jobs.filter((_, i) => !present[i]);
  if (lost.length === 0) return 0;
  await readyLostRows(deps.db, "jobs", lost.map((j) => ({ id: j.id, jobId: `${j.id}-${j.generation + 1}` })));
  const rows = (await jobsByIds(deps.db, lost.map((j) => j.id))).filter((r) => QUEUED.has(r.status));
  // Not added (Redis refused): the rows stay queued, and the next pass finds them gone again.
  return (await enqueueJobs(deps, rows, Date.now())) ? rows.length : 0;
}

async function rebuildFlow(deps: Deps, flowId: string, queued: FlowJobRow[]) {
  await deps.db.transaction(async (tx) => {
    const generation = await bumpGeneration(tx, flowId);
    await readyLostRows(tx, "flow_jobs", queued.map((r) => ({ id: r.id, jobId: `${r.id}-${generation}` })));
  });
  const rows = await flowJobsOf(deps.db, flowId);
  await enqueueRows(deps, rows, new Set(rows.filter((r) => QUEUED.has(r.status)).map((r) => r.id)), Date.now());
}

/**
 * Adds each lost subtree of a flow again under its own ids. The top of a subtree is a lost job
 * whose parent is not lost; its unfinished descendants ride along, and those Redis still has are
 * only re-linked (BullMQ treats an existing id as a duplicate and ties it to the new parent). A top
 * with a parent is added only if that parent still lists it as a dependency: otherwise the parent
 * already ran, or was released, without it; re-running the job would feed nobody, so it and its
 * lost descendants end as `failed` with a reason. A lost job still locked by a worker, or already
 * finished in Redis (the recorder has yet to say so), is left to the next pass.
 */
async function restoreLostSubtrees(deps: Deps, rows: FlowJobRow[], lost: Set<string>) {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const unfinished = new Set(rows.filter((r) => QUEUED.has(r.status)).map((r) => r.id));
  const tops = rows.filter((r) => lost.has(r.id) && !(r.parentId && lost.has(r.parentId)));
  const awaited = await awaitedByParent(deps, tops, byId);
  let restored = 0;
  let stranded = 0;
  for (const top of tops) {
    const parent = top.parentId ? byId.get(top.parentId) : undefined;
    const subtree = new Set<string>();
    const visit = (row: FlowJobRow) => {
      subtree.add(row.id);
      for (const childId of row.children ?? []) {
        const child = byId.get(childId);
        if (child && unfinished.has(child.id)) visit(child);
      }
    };
    visit(top);
    const lostHere = rows.filter((r) => subtree.has(r.id) && lost.has(r.id));
    if (top.parentId && !(parent && awaited.has(top.id))) {
      deps.log.warn("a lost job's parent no longer waits for it; ending it as failed", { flowId: top.flowId, jobId: top.jobId });
      await failLostJobs(deps.db, lostHere.map((r) => r.id), STRANDED_REASON);
      stranded += lostHere.length;
      continue;
    }
    if (!(await clearedForRestore(deps, lostHere))) continue;
    await readyLostRows(deps.db, "flow_jobs", lostHere.map((r) => ({ id: r.id, jobId: r.jobId })));
    const readied = await flowJobsOf(deps.db, top.flowId);
    const [tree] = buildRedisTrees(readied, subtree, Date.now());
    if (!tree) continue;
    if (parent) tree.opts = { ...tree.opts, parent: { id: parent.jobId, queue: bullKey(prefixOf(deps, parent), parent.queueName) } };
    await addTrees(deps.producer, top.shard, [tree]);
    restored++;
  }
  return { restored, stranded };
}

/**
 * Makes lost jobs safe to add again under their ids: none may still be locked by a worker or
 * finished in Redis (then they are left alone this pass), and no stale copy of an id may linger in
 * a BullMQ list, where a worker would pop it and run the job a second time.
 */
async function clearedForRestore(deps: Deps, rows: FlowJobRow[]): Promise<boolean> {
  const queueKey = (r: FlowJobRow, part: string) => bullKey(prefixOf(deps, r), r.queueName, part);
  const checks = await ask(
    deps,
    rows.flatMap((r) => [
      ["exists", jobKey(deps, r, "lock")],
      ["zscore", queueKey(r, "completed"), r.jobId],
      ["zscore", queueKey(r, "failed"), r.jobId],
    ]),
    "restore check",
  );
  const busy = checks.some(([err, value], i) => err || (i % 3 === 0 ? Number(value) === 1 : value !== null));
  if (busy) return false;
  const stale = deps.producer.redis.multi();
  for (const r of rows) {
    for (const list of ["wait", "paused", "active"]) stale.lrem(queueKey(r, list), 0, r.jobId);
    for (const set of ["delayed", "prioritized", "waiting-children"]) stale.zrem(queueKey(r, set), r.jobId);
  }
  await stale.exec();
  return true;
}

/** The rows whose parent's BullMQ dependencies still list them: the parent waits for them. */
async function awaitedByParent(deps: Deps, rows: FlowJobRow[], byId: Map<string, FlowJobRow>): Promise<Set<string>> {
  const links = rows.flatMap((row) => {
    const parent = row.parentId ? byId.get(row.parentId) : undefined;
    return parent ? [{ row, parent }] : [];
  });
  if (links.length === 0) return new Set();
  const replies = await ask(deps, links.map(({ row, parent }) => ["sismember", jobKey(deps, parent, "dependencies"), jobKey(deps, row)]), "dependency check");
  return new Set(links.filter((_, i) => !replies[i]?.[0] && Number(replies[i]?.[1]) === 1).map(({ row }) => row.id));
}
