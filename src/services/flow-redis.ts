import { withoutLimits } from "../scheduling/limits";
import type { FlowJob, JobsOptions } from "bullmq";
import { REDIS_RETENTION } from "../queues";
import type { JobOpts } from "../job-opts";
import type { FlowJobRow } from "../db/queries/flows";
import { META_KEY, type FlowdJobsOptions, type JobMeta, type KeptChildren } from "./job-envelope";
import { QUEUED_STATUSES } from "../statuses";

const QUEUED: ReadonlySet<string> = new Set(QUEUED_STATUSES);

/** What Postgres recorded of a job that decides how it is added again after Redis lost it. */
export type ResumeRow = Pick<FlowJobRow, "opts" | "status" | "attemptsMade" | "attemptsBase" | "readyAt" | "createdAt" | "parkedUntil">;

/** The fields of a flow's job row needed to put it into Redis. */
export type EnqueueRow = Pick<FlowJobRow, "id" | "jobId" | "parentId" | "name" | "queueName" | "shard" | "data" | "result"> & ResumeRow & { flowId?: string } & Partial<Pick<FlowJobRow, "key" | "dependsOn" | "waitingFor">>;

/** A row the default add takes: `pending`, and not held out of Redis (see src/scheduling/). */
export const mayEnter = (r: Pick<EnqueueRow, "status" | "waitingFor">) => r.status === "pending" && !r.waitingFor;

/**
 * How far off a tree's job held for its per-key limits is parked in BullMQ's delayed set. BullMQ
 * adds a tree at once, so such a job cannot stay out of Redis as a graph's or a single job's does:
 * it goes in with its tree, parked (its parent waits for it as for any child; one with children of
 * its own enters the delayed set only once they are done, as BullMQ applies a parent's delay), and
 * the release pass that lets it go promotes it (src/scheduling/release.ts). Its row stays held in
 * Postgres meanwhile — `waiting-children` while its children run, `pending` once ready — so the
 * same passes count and release it. A year: never reached while the limits' passes run, and well
 * within BullMQ's delayed scores (timestamp × 4096 stays below 2^53 until 2039).
 */
export const HOLD_DELAY_MS = 365 * 86_400_000;

const LIMIT_HOLDS: ReadonlySet<string> = new Set(["concurrency", "rateLimit"]);

/** A tree's job held for its limits: added with its tree, parked (HOLD_DELAY_MS); a graph's held job is not added at all. */
export const heldInTree = (r: Pick<EnqueueRow, "status" | "waitingFor"> & { key?: string | null }) =>
  !r.key && LIMIT_HOLDS.has(r.waitingFor ?? "") && (r.status === "pending" || r.status === "waiting-children");

/** The rows an add of a flow's jobs takes: pending ones nothing holds, and a tree's jobs held for their limits. */
export const addable = (r: Pick<EnqueueRow, "status" | "waitingFor"> & { key?: string | null }) => mayEnter(r) || heldInTree(r);

/** The status a tree's job held for its limits is written with: waiting for its children first, if it has any to wait for. */
export const heldTreeStatus = (waitsForChildren: boolean) => (waitsForChildren ? "waiting-children" : "pending");

/**
 * How a job Redis lost is added again (the reconciler's add), from what Postgres recorded of it:
 * - attempts: those of this run that ended already are carried (the job's count goes on from
 *   them) and the add gets only what `opts.attempts` has left; the attempt Redis lost while it ran
 *   is run again, not counted twice, and a parked http task resumes its wait (same attempt).
 * - delay: a delayed job runs when it was due (its recorded ready time: the end of its delay or
 *   backoff; created + delay when the add put it there), at once if that time has passed; a job
 *   that was ready or running runs at once; one still waiting for its children keeps its delay for
 *   when they are done, as BullMQ applies it.
 */
export function resumeOptions(row: ResumeRow, nowMs: number): { opts: Pick<JobsOptions, "delay" | "attempts">; meta: JobMeta } {
  const inFlight = row.status === "active" ? 1 : 0;
  const carried = Math.max(0, row.attemptsMade - row.attemptsBase - inFlight);
  const dueMs = row.status === "delayed" ? (row.readyAt?.getTime() ?? row.createdAt.getTime() + (row.opts.delay ?? 0)) : nowMs;
  const delay = row.status === "waiting-children" ? (row.opts.delay ?? 0) : Math.max(0, dueMs - nowMs);
  return {
    opts: { delay, ...(row.opts.attempts ? { attempts: Math.max(1, row.opts.attempts - carried) } : {}) },
    meta: {
      ...(row.attemptsBase + carried > 0 ? { attemptsBefore: row.attemptsBase + carried } : {}),
      ...(carried > 0 ? { attemptsCarried: carried } : {}),
      ...(row.parkedUntil ? { resumesParked: true } : {}),
    },
  };
}

/** flowd's failure rule: a failed child fails its parent unless the child chose another policy. */
export const failsParent = (opts: JobOpts) => !(opts.ignoreDependencyOnFailure || opts.continueParentOnFailure || opts.removeDependencyOnFailure);

export function bullOptions(opts: JobOpts, jobId: string, hasParent: boolean): JobsOptions {
  // Per-key limits are flowd's, applied before the job reaches Redis (src/scheduling/limits.ts);
  // `debounce` is decided in Postgres before the add (BullMQ has a deduplication option of its own);
  // `timeoutMs` and `expireAfterMs` ride along unknown to BullMQ, for flowd's processor to read.
  const { failParentOnFailure, ignoreDependencyOnFailure, continueParentOnFailure, removeDependencyOnFailure, debounce: _debounce, ...rest } = withoutLimits(opts);
  const otherPolicy = !failsParent(opts);
  return {
    ...rest,
    jobId,
    ...REDIS_RETENTION,
    ...(hasParent && !otherPolicy ? { failParentOnFailure: failParentOnFailure ?? true } : {}),
    ...(ignoreDependencyOnFailure ? { ignoreDependencyOnFailure } : {}),
    ...(continueParentOnFailure ? { continueParentOnFailure } : {}),
    ...(removeDependencyOnFailure ? { removeDependencyOnFailure } : {}),
  };
}

/**
 * A flow job as flowd adds it: the BullMQ node, and the kept results its parent must be given.
 * `attached`: a job already in Redis (still running, parked or waiting) that the add only ties to
 * its new parent; BullMQ treats its id as a duplicate and never runs it twice.
 */
export type FlowdFlowJob = FlowJob & { opts: FlowdJobsOptions; kept?: KeptChildren; attached?: boolean; children?: FlowdFlowJob[] };

/**
 * Builds the BullMQ trees for the rows named in `adding` (by default the flow's `pending` rows).
 * Each tree is rooted at an added row whose parent is not added; an added row's completed
 * children are not re-run — their results ride along in `kept`, which addTrees writes where
 * `getChildrenValues()` reads them. Its children still live in Redis (a sibling running, parked or
 * waiting when a retry re-adds their failed parent) are not re-run either: they come as `attached`
 * leaves under their own ids, so their own completion releases the new parent. With `resumeAtMs`,
 * the rows are jobs Redis lost, added again as they stood at that time (see resumeOptions).
 */
export function buildRedisTrees(
  rows: EnqueueRow[],
  adding: ReadonlySet<string> = new Set(rows.filter(addable).map((r) => r.id)),
  resumeAtMs?: number,
): FlowdFlowJob[] {
  const byParent = new Map<string | null, EnqueueRow[]>();
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const row of rows) {
    const list = byParent.get(row.parentId) ?? [];
    list.push(row);
    byParent.set(row.parentId, list);
  }
  const node = (row: EnqueueRow): FlowdFlowJob => {
    const children = byParent.get(row.id) ?? [];
    const kept: KeptChildren = {};
    for (const c of children) if (c.status === "completed") kept[c.jobId] = { queue: c.queueName, result: c.result };
    // A graph job's dependencies ride along as kept children: it is added only once they are done.
    const dependencies = (row.dependsOn ?? []).map((id) => byId.get(id)).filter((d) => d !== undefined);
    for (const d of dependencies) if (d.status === "completed") kept[d.jobId] = { queue: d.queueName, result: d.result };
    const resumed = resumeAtMs === undefined ? undefined : resumeOptions(row, resumeAtMs);
    const meta: JobMeta = resumed?.meta ?? (row.attemptsMade > 0 ? { attemptsBefore: row.attemptsMade } : {});
    // A child that failed (under the default policy) while this job was out of Redis never told it:
    // the job must fail as BullMQ would have failed it, not run as if nothing happened.
    const failed = children.find((c) => c.status === "failed" && failsParent(c.opts));
    if (failed) meta.failedChild = failed.jobId;
    if (children.length > 0 || dependencies.length > 0) meta.parent = true;
    if (dependencies.length > 0) meta.parentKeys = Object.fromEntries(dependencies.map((d) => [d.jobId, d.key ?? d.id]));
    if (row.flowId) meta.flowId = row.flowId;
    const added = children.filter((c) => adding.has(c.id)).map(node);
    // A child parked for its limits (heldInTree) is in Redis too, though its row is not queued.
    const live = children.filter((c) => !adding.has(c.id) && (QUEUED.has(c.status) || heldInTree(c))).map(attach);
    return {
      name: row.name,
      queueName: row.queueName,
      data: row.data,
      opts: {
        ...bullOptions(row.opts, row.jobId, row.parentId !== null),
        ...resumed?.opts,
        ...(heldInTree(row) ? { delay: HOLD_DELAY_MS } : {}),
        [META_KEY]: meta,
      },
      ...(Object.keys(kept).length > 0 ? { kept } : {}),
      ...(added.length + live.length > 0 ? { children: [...added, ...live] } : {}),
    };
  };
  // Only its id, queue and failure policy matter: BullMQ keeps the existing job as it is.
  const attach = (row: EnqueueRow): FlowdFlowJob => ({
    name: row.name,
    queueName: row.queueName,
    data: row.data,
    opts: bullOptions(row.opts, row.jobId, true),
    attached: true,
  });
  return rows.filter((r) => adding.has(r.id) && (r.parentId === null || !adding.has(r.parentId))).map(node);
}

/** The status a job has in Redis right after it was added, before any worker touches it. */
export function initialStatus(row: { opts: JobOpts }, hasChildren: boolean): string {
  if (hasChildren) return "waiting-children";
  return (row.opts.delay ?? 0) > 0 ? "delayed" : "waiting";
}
