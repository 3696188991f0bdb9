import { limitFields } from "../scheduling/limits";
import { ensureKeysWithin, releaseAndAdd } from "../scheduling/limit-release";
import {
  bumpGeneration,
  cancelUnfinished,
  deleteFlowRow,
  findFlow,
  findFlowByIdempotencyKey,
  flowJobsOf,
  insertFlow,
  insertFlows,
  listFlows,
  lockFlow,
  markFlowUnqueued,
  resetForRetry,
  type FlowJobRow,
  type FlowRow,
} from "../db/queries/flows";
import { deleteReply } from "../db/queries/replies";
import { holdForDependencies, holdTreeRows, reopenFlow } from "../db/queries/graph-rows";
import { Conflict, NotFound } from "../errors";
import { freshJobState } from "../db/schema/columns";
import { currentTraceparent } from "../telemetry";
import { newId } from "../ids";
import type { ServiceDeps, User } from "./deps";
import { planFlow, refusal, type NodeInput, type PlannedJob } from "./flow-spec";
import { planGraph, type GraphJobInput, type PlannedGraphJob } from "../scheduling/graph-plan";
import { assertSameRequest, firstReply, isUniqueViolation, rememberReply, requestHash } from "./idempotency";
import { flowView, flowSummary, type FlowView } from "./flow-views";

import { enqueueRows, removeFromRedis } from "./enqueue";
import { addAfter } from "../queues";
import { heldTreeStatus, initialStatus } from "./flow-redis";
import { keysetPage } from "./cursor";
import { createGroupCommit, type GroupCommit } from "./group-commit";
import { parseDataFilter, timeRange } from "./search";
import { withReports } from "./job-report-views";
import { isFinished } from "../statuses";
import { retryOnDeadlock } from "../db/deadlock";

export type FlowDeps = ServiceDeps;
/** What creating a flow needs: workers create flows too (a schedule's firing of a definition). */
export type CreateFlowDeps = Pick<ServiceDeps, "config" | "db" | "producer" | "log" | "registry">;

/** A flow as a client sends it: a tree (`root`) or a graph (`jobs` with `dependsOn`), never both. */
export type CreateFlowInput = { name: string; root?: NodeInput; jobs?: GraphJobInput[] };

/** Where a flow came from, when not from `POST /v1/flows`: a definition's run, by hand, schedule or event. */
export type FlowOrigin = { definition: string; definitionVersion: number; scheduleId?: string; eventId?: string };

function formOf(body: CreateFlowInput): "tree" | "graph" {
  if (body.root !== undefined && body.jobs !== undefined)
    throw refusal("invalid_input", "/jobs", "Send either root (a tree) or jobs (a graph), not both.");
  if (body.jobs !== undefined) return "graph";
  if (body.root === undefined) throw refusal("invalid_input", "/root", "Send root (a tree of jobs) or jobs (a graph of jobs).");
  return "tree";
}

/**
 * Validates the tree, writes the flow and every job in one transaction (status `pending`), then adds
 * the tree to Redis under the pre-assigned ids. If Redis refuses, the flow stays `pending` and the
 * enqueuer adds it later: an accepted flow is never lost, and the ids make a second add a no-op.
 */
export async function createFlow(
  deps: CreateFlowDeps,
  user: User,
  body: CreateFlowInput,
  idempotencyKey?: string,
  /**
   * `request`: what a repeat with the key must match, when it is not the flow itself (a run's input).
   * `fresh`: no flow can have the key yet (see createPreparedRun): no look-up first, no stored reply.
   */
  from?: { origin?: FlowOrigin; request?: unknown; fresh?: boolean },
): Promise<{ flow: FlowView; replayed: boolean }> {
  const hash = idempotencyKey ? requestHash(from?.request ?? body) : "";
  if (idempotencyKey && !from?.fresh) {
    const existing = await findFlowByIdempotencyKey(deps.db, user.userId, idempotencyKey);
    if (existing) return { flow: await replay(deps, existing, hash), replayed: true };
  }
  const graph = formOf(body) === "graph";
  const planned: (PlannedJob & Partial<PlannedGraphJob>)[] = graph
    ? planGraph(body.jobs!, deps.config, deps.registry)
    : planFlow(body.root!, deps.config, deps.registry);
  const flowId = newId();
  // A flow and all its jobs on one shard, picked from its id (BullMQ needs a flow in one hash slot).
  const shard = deps.producer.pick(flowId);
  const now = new Date();
  const parents = new Set(planned.map((p) => p.parentId));
  const rows: FlowJobRow[] = planned.map((p) => {
    // Per-key limits: a graph's job is held out of Redis (after its dependencies, see planGraph); a
    // tree's goes in with its tree, parked, and waits for its children first if it has any (see
    // HOLD_DELAY_MS in flow-redis.ts).
    const { concurrencyKeys, rateKey, waitingFor: limitHold } = limitFields(p.opts);
    const waitingFor = graph ? (p.waitingFor ?? null) : limitHold;
    const status = graph
      ? waitingFor ? "pending" : initialStatus(p, false)
      : limitHold ? heldTreeStatus(parents.has(p.id)) : initialStatus(p, parents.has(p.id));
    return {
      id: p.id,
      jobId: p.jobId,
      userId: user.userId,
      flowId,
      parentId: p.parentId,
      name: p.name,
      queueName: p.queueName,
      shard,
      data: p.data,
      opts: p.opts,
      // Written where the add puts it; back to `pending` below if the add fails. A graph job held
      // for its dependencies stays `pending` until the recorder releases it (src/scheduling/).
      ...freshJobState(now, status),
      children: p.children,
      depth: p.depth,
      key: p.key ?? null,
      dependsOn: p.dependsOn ?? null,
      waitingFor,
      spawnedBy: null,
      waitsOn: null,
      concurrencyKeys,
      rateKey,
    };
  });
  const flow: FlowRow = {
    id: flowId,
    userId: user.userId,
    name: body.name,
    status: "running",
    rootId: graph ? null : planned[0]!.id,
    jobCount: planned.length,
    generation: 0,
    graph,
    idempotencyKey: idempotencyKey ?? null,
    requestHash: idempotencyKey ? hash : null,
    createdAt: now,
    updatedAt: now,
    traceparent: currentTraceparent(),
    finishedAt: null,
    definition: from?.origin?.definition ?? null,
    definitionVersion: from?.origin?.definitionVersion ?? null,
    scheduleId: from?.origin?.scheduleId ?? null,
    eventId: from?.origin?.eventId ?? null,
  };
  const limited = rows.some((r) => r.concurrencyKeys !== null || r.rateKey !== null);
  if (limited) await ensureFlowLimitKeys(deps, user.userId, rows);
  // BullMQ builds the add while Postgres writes the rows; it is sent once they are committed (never
  // if the write fails), and its time limit runs from then on, however long the write took.
  const inserted = writeFlow(deps, flow, rows);
  // A graph's jobs nothing holds; a tree whole (its held jobs go in parked).
  const adding = addAfter(inserted, () => enqueueRows(deps, rows, new Set(rows.filter((r) => !graph || !r.waitingFor).map((r) => r.id))));
  adding.catch(() => {}); // a failed write fails it unsent; otherwise it is awaited below
  try {
    await inserted;
  } catch (err) {
    // Two requests with one key raced; the loser answers with the winner's flow.
    if (idempotencyKey && isUniqueViolation(err)) {
      const existing = await findFlowByIdempotencyKey(deps.db, user.userId, idempotencyKey);
      if (existing) return { flow: await replay(deps, existing, hash), replayed: true };
    }
    throw err;
  }
  const queued = await adding.catch((err) => {
    deps.log.warn("flow accepted but not yet in Redis; the enqueuer will add it", { flowId, err: String(err) });
    return false;
  });
  // Answered from what was just written, so the hot path reads nothing back.
  if (!queued) await markPending(deps, flowId, rows);
  if (limited) await releaseLimitedRows(deps, user.userId, rows);
  const view = flowView(flow, rows);
  if (idempotencyKey && !from?.fresh) await rememberReply(deps, flowId, view);
  return { flow: view, replayed: false };
}

/** The keys a flow's jobs name get settings where they have none (under the user's lock, see limit-release.ts). */
async function ensureFlowLimitKeys(deps: CreateFlowDeps, userId: string, rows: FlowJobRow[]) {
  await deps.db.transaction((tx) => ensureKeysWithin(tx, userId, rows.map((r) => r.opts)));
}

/** A release pass for a new flow's jobs held by their limits; what it let go enters Redis now. */
async function releaseLimitedRows(deps: CreateFlowDeps, userId: string, rows: FlowJobRow[]) {
  const freed = new Set((await releaseAndAdd(deps, userId)).flowJobs);
  for (const r of rows) if (freed.has(r.id)) r.waitingFor = null;
}

/** Flows up to this size share a write with others; a bigger one is written alone so it never delays many small ones. */
const SHARED_WRITE_MAX_JOBS = 100;

type FlowWrite = { flow: FlowRow; rows: FlowJobRow[] };
const flowWrites = new WeakMap<CreateFlowDeps, GroupCommit<FlowWrite, unknown>>();

/**
 * Small flows created at once (concurrent requests, a publish's runs, a schedule's firings) share a
 * transaction: one commit, one doorbell, instead of one each (services/group-commit.ts). A shared
 * write that fails is tried again flow by flow, so one flow's failure (a raced Idempotency-Key)
 * stays its own.
 */
async function writeFlow(deps: CreateFlowDeps, flow: FlowRow, rows: FlowJobRow[]) {
  if (rows.length > SHARED_WRITE_MAX_JOBS) return insertFlow(deps.db, flow, rows);
  let gc = flowWrites.get(deps);
  if (!gc) {
    gc = createGroupCommit<FlowWrite, unknown>(async (items) => {
      try {
        await insertFlows(deps.db, items.map((i) => ({ flow: i.flow, jobs: i.rows })));
        return items.map(() => null);
      } catch (err) {
        if (items.length === 1) return [err ?? new Error("the flow's write failed")];
        const each = await Promise.allSettled(items.map((i) => insertFlow(deps.db, i.flow, i.rows)));
        return each.map((r) => (r.status === "rejected" ? (r.reason ?? new Error("the flow's write failed")) : null));
      }
    }, { slots: 1, maxBatch: 50 });
    flowWrites.set(deps, gc);
  }
  const failure = await gc.submit({ flow, rows });
  if (failure) throw failure;
}

export async function replay(deps: CreateFlowDeps, existing: FlowRow, hash: string): Promise<FlowView> {
  assertSameRequest(existing.requestHash, hash, existing.id);
  return firstReply(deps.db, existing.id, async () => flowView(existing, await flowJobsOf(deps.db, existing.id)));
}

async function loadView(deps: FlowDeps, user: User, id: string): Promise<FlowView> {
  const flow = await findFlow(deps.db, user.userId, id);
  if (!flow) throw new NotFound("flow", id);
  return flowView(flow, await flowJobsOf(deps.db, id));
}

/** The flow as Postgres has it; with `waitSeconds`, answers as soon as it finishes or the time passes. */
export async function getFlow(deps: FlowDeps, user: User, id: string, waitSeconds = 0): Promise<FlowView> {
  const flow = await deps.waiters.until(id, waitSeconds, () => findFlow(deps.db, user.userId, id), (f) => f.status !== "running");
  if (!flow) throw new NotFound("flow", id);
  return withReports(deps.db, flowView(flow, await flowJobsOf(deps.db, id)));
}

/**
 * The add failed (Redis down, too slow): the rows go back to `pending`, where the enqueuer finds
 * them. If even that write fails, the reconciler finds them queued in Postgres and gone from Redis.
 */
async function markPending(deps: CreateFlowDeps, flowId: string, rows: FlowJobRow[]) {
  for (const r of rows) r.status = "pending";
  await markFlowUnqueued(deps.db, flowId).catch((err) =>
    deps.log.warn("could not mark an unqueued flow pending; the reconciler will add it", { flowId, err: String(err) }),
  );
}

export function listUserFlows(
  deps: FlowDeps,
  user: User,
  q: {
    status?: string;
    name?: string;
    data?: string;
    definition?: string;
    scheduleId?: string;
    eventId?: string;
    since?: string;
    until?: string;
    limit?: number;
    cursor?: string;
  },
) {
  const filters = {
    status: q.status,
    name: q.name,
    data: parseDataFilter(q.data),
    definition: q.definition,
    scheduleId: q.scheduleId,
    eventId: q.eventId,
    ...timeRange(q),
  };
  return keysetPage(q, (limit, before) => listFlows(deps.db, user.userId, { ...filters, limit, before }), flowSummary);
}

/** Unfinished jobs become `cancelled` in Postgres first (that decides), then leave Redis; running ones are aborted. */
export async function cancelFlow(deps: FlowDeps, user: User, id: string): Promise<FlowView> {
  const cancelled = await retryOnDeadlock(() =>
    deps.db.transaction(async (tx) => {
      const flow = await lockFlow(tx, user.userId, id);
      if (!flow) throw new NotFound("flow", id);
      if (flow.status !== "running")
        throw new Conflict("flow_finished", `The flow already finished as '${flow.status}'; only a running flow can be cancelled.`);
      return cancelUnfinished(tx, id);
    }),
  );
  const ordered = [...cancelled].sort((a, b) => a.depth - b.depth);
  // Every unfinished job, not only those Postgres saw start: the recorder may not have caught up yet.
  await deps.broadcastCancel(ordered.map((r) => r.jobId)).catch((err) =>
    deps.log.warn("could not broadcast cancel", { flowId: id, err: String(err) }),
  );
  await removeFromRedis(deps, ordered);
  return loadView(deps, user, id);
}

/**
 * Runs the failed part of a flow again: the failed and cancelled jobs reachable from the root
 * through failed or cancelled jobs (the failures and the ancestors they failed) get new BullMQ ids
 * and go back to `pending`. Nothing else is touched: completed jobs keep their results, which reach
 * their parents through the envelope, and jobs still running, parked or waiting keep their attempt,
 * their BullMQ id (so their callback URLs stay good) and their result to come — the re-added
 * parent is tied to them in Redis and waits for them as for any child. The flow is `running`
 * again until the root finishes.
 */
export async function retryFlow(deps: FlowDeps, user: User, id: string): Promise<FlowView> {
  const previous = await retryOnDeadlock(() =>
    deps.db.transaction(async (tx) => {
      const flow = await lockFlow(tx, user.userId, id);
      if (!flow) throw new NotFound("flow", id);
      if (flow.status === "running")
        throw new Conflict("flow_running", "The flow is still running; retry it once it has failed.");
      if (flow.status !== "failed")
        throw new Conflict("nothing_to_retry", `The flow finished as '${flow.status}'; only a failed flow can be retried.`);
      const rows = await flowJobsOf(tx, id);
      // A graph re-runs every failed and cancelled job; each waits again for its dependencies.
      const rerun = flow.graph ? rows.filter((r) => RUN_AGAIN.has(r.status)) : failedFromRoot(rows);
      const generation = await bumpGeneration(tx, id);
      await resetForRetry(tx, rerun.map((r) => ({ id: r.id, job_id: `${r.id}-${generation}` })));
      if (!flow.graph) await holdTreeRows(tx, treeHolds(rows, rerun));
      if (flow.graph) {
        await holdForDependencies(tx, rerun.map((r) => r.id));
        // No root reopens it: the flow runs again until its last job finishes.
        await reopenFlow(tx, id);
      }
      return rerun;
    }),
  );
  // Their earlier runs leave Redis, but not the live children BullMQ lists under them. (A graph job
  // cancelled for its failed dependency never entered Redis.)
  await removeFromRedis(deps, previous.filter((r) => r.key === null || r.status === "failed").map((r) => ({ ...r, keepChildren: true })));
  const rows = await flowJobsOf(deps.db, id);
  // A tree's re-run part goes in under the parents re-run with it; its other live jobs are attached.
  const tree = rows.every((r) => r.key === null);
  await enqueueRows(deps, rows, tree ? new Set(previous.map((r) => r.id)) : undefined).catch((err) =>
    deps.log.warn("retry accepted but not yet in Redis; the enqueuer will add it", { flowId: id, err: String(err) }),
  );
  // Re-run jobs under per-key limits wait their turn again: a pass now, not the sweeper's next.
  if (rows.some((r) => r.status === "pending" && (r.waitingFor === "concurrency" || r.waitingFor === "rateLimit")))
    await releaseLimitedRows(deps, user.userId, []);
  return loadView(deps, user, id);
}

const RUN_AGAIN: ReadonlySet<string> = new Set(["failed", "cancelled"]);

/**
 * A tree's re-run jobs under per-key limits, held again as at creation: waiting for their children
 * first when any is not completed (re-run or still live), else ready for their turn.
 */
function treeHolds(rows: FlowJobRow[], rerun: FlowJobRow[]) {
  const open = new Set(rows.filter((r) => r.status !== "completed" && r.parentId !== null).map((r) => r.parentId!));
  return rerun.flatMap((r) => {
    const { waitingFor } = limitFields(r.opts);
    return waitingFor ? [{ id: r.id, waitingFor, status: heldTreeStatus(open.has(r.id)) }] : [];
  });
}

/** Failed or cancelled jobs reachable from the root through failed or cancelled jobs, parents first. */
function failedFromRoot(rows: FlowJobRow[]): FlowJobRow[] {
  const children = new Map<string, FlowJobRow[]>();
  for (const r of rows) {
    if (!r.parentId) continue;
    const siblings = children.get(r.parentId) ?? [];
    siblings.push(r);
    children.set(r.parentId, siblings);
  }
  const out: FlowJobRow[] = [];
  const walk = (r: FlowJobRow) => {
    if (!RUN_AGAIN.has(r.status)) return;
    out.push(r);
    for (const c of children.get(r.id) ?? []) walk(c);
  };
  const root = rows.find((r) => r.parentId === null);
  if (root) walk(root);
  return out;
}

/**
 * Deletes a finished flow: its rows (with its events kept in the log) and every job of it in Redis.
 * A failed flow may still have jobs running, parked or waiting (siblings of the job that failed
 * it): they are stopped as a cancel stops them — aborted where a worker runs them, removed from
 * Redis (those a worker still holds as soon as it lets go) — so nothing keeps running or waiting
 * for a flow that no longer exists, and their callback URLs answer 409 `job_finished`.
 */
export async function deleteFlow(deps: FlowDeps, user: User, id: string): Promise<void> {
  const rows = await retryOnDeadlock(() =>
    deps.db.transaction(async (tx) => {
      const flow = await lockFlow(tx, user.userId, id);
      if (!flow) throw new NotFound("flow", id);
      if (flow.status === "running")
        throw new Conflict("flow_running", "The flow is still running; cancel it or wait for it to finish before deleting it.");
      const jobs = await flowJobsOf(tx, id);
      await deleteFlowRow(tx, id);
      await deleteReply(tx, id);
      return jobs;
    }),
  );
  const live = rows.filter((r) => !isFinished(r.status));
  if (live.length > 0)
    await deps.broadcastCancel(live.map((r) => r.jobId)).catch((err) =>
      deps.log.warn("could not broadcast cancel", { flowId: id, err: String(err) }),
    );
  await removeFromRedis(deps, rows);
}
