import type { Job, JobsOptions } from "bullmq";

/**
 * flowd's bookkeeping for a BullMQ job, kept in the job's opts under `flowd` (BullMQ stores opts it
 * does not know as they are), so `job.data` is exactly the data the client posted — what bull-board
 * and users' own workers see.
 */
export interface JobMeta {
  /** Set on jobs with children: only they ask Redis for their children's results. */
  parent?: boolean;
  /** Attempts made by earlier runs of a retried job, so handlers count attempts across runs. */
  attemptsBefore?: number;
  /**
   * Attempts of this run that ended before Redis lost the job and the reconciler added it again:
   * BullMQ counts from zero on the new add, so flowd adds these to its count (the row's attempts,
   * the http task's callback attempt) and the add got only the attempts `opts.attempts` had left.
   */
  attemptsCarried?: number;
  /** Added again while its http task was parked: the first run resumes that wait, calling nobody. */
  resumesParked?: boolean;
  /** A child's job id whose failure (while this job was lost from Redis) means this job fails. */
  failedChild?: string;
  /** A graph job's dependencies, BullMQ job id → key: how the handler's `ctx.parents` is keyed. */
  parentKeys?: Record<string, string>;
  /** The flow a flow job belongs to, for the handler's `ctx.job.flowId`. */
  flowId?: string;
  /**
   * BullMQ's Postgres backend only: kept children's results (child job id → result) and their
   * queues, which a trigger writes where `getChildrenValues()` reads them (see pg-queues.ts).
   */
  kept?: Record<string, unknown>;
  keptQueues?: Record<string, string>;
}

/**
 * Results of children that completed in an earlier run (a retry or a rebuild re-adds only the
 * unfinished jobs), by child job id. They travel beside the tree and are written into the parent's
 * `processed` hash before it is added, where `getChildrenValues()` finds them like any child's.
 */
export type KeptChildren = Record<string, { queue: string; result: unknown }>;

export const META_KEY = "flowd";

export type FlowdJobsOptions = JobsOptions & { [META_KEY]?: JobMeta };

/** A job's data and flowd's bookkeeping. A job from before the bookkeeping moved carries it in `data`. */
export function readJob(job: Pick<Job, "data" | "opts">): { data: Record<string, unknown>; meta: JobMeta } {
  const meta = (job.opts as FlowdJobsOptions)[META_KEY];
  if (meta && typeof meta === "object") return { data: (job.data ?? {}) as Record<string, unknown>, meta };
  const legacy = job.data as { data?: unknown } | null;
  if (legacy && typeof legacy === "object" && legacy.data && typeof legacy.data === "object") {
    const { data, ...rest } = legacy as { data: Record<string, unknown> } & JobMeta;
    return { data, meta: rest };
  }
  // A job added by another tool: its whole data is the input, and it may have children.
  return { data: (job.data ?? {}) as Record<string, unknown>, meta: { parent: true } };
}

/**
 * The attempts flowd adds to BullMQ's count (`atm`) for a job, from the opts text on its Redis
 * hash: those its run made before Redis lost it (see JobMeta.attemptsCarried); 0 for any other.
 */
export function carriedAttempts(optsText: string | null | undefined): number {
  if (!optsText || !optsText.includes("attemptsCarried")) return 0;
  try {
    const carried = (JSON.parse(optsText) as FlowdJobsOptions)[META_KEY]?.attemptsCarried;
    return typeof carried === "number" && carried > 0 ? carried : 0;
  } catch {
    return 0;
  }
}
