/**
 * What flowd stores as a BullMQ job's data: the user's data, plus the results of children that
 * already completed in an earlier run (a retry or a rebuild re-adds only unfinished jobs, so their
 * parents would otherwise never see what the finished children returned).
 */
export interface JobEnvelope {
  data: Record<string, unknown>;
  kept?: Record<string, unknown>;
  /** Attempts made by earlier runs of a retried job, so handlers count attempts across runs. */
  attemptsBefore?: number;
  /** Set on jobs with children: only they ask Redis for their children's results. */
  parent?: boolean;
  /** A child's job id whose failure (while this job was lost from Redis) means this job fails. */
  failedChild?: string;
}

export function readEnvelope(raw: unknown): JobEnvelope {
  const env = raw as Partial<JobEnvelope> | null;
  if (env && typeof env === "object" && env.data && typeof env.data === "object") return env as JobEnvelope;
  // A job added by another tool: its whole data is the input, and it may have children.
  return { data: (raw ?? {}) as Record<string, unknown>, parent: true };
}
