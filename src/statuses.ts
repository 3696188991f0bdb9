/**
 * Every status a job or a flow can have, in one place: the TypeBox enums of the API, the TypeScript
 * unions, the SQL literals of queries and the triggers' expectations (checked by a test) all come
 * from these lists.
 */

/** A job's statuses, in the order a job usually goes through them. */
export const JOB_STATUSES = ["pending", "waiting", "waiting-children", "delayed", "active", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job never leaves by itself (only a retry moves a failed one on). */
export const FINISHED_STATUSES = ["completed", "failed", "cancelled"] as const satisfies readonly JobStatus[];
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

/** Statuses of a job Postgres believes is in Redis, queued or running. */
export const QUEUED_STATUSES = ["waiting", "waiting-children", "delayed", "active"] as const satisfies readonly JobStatus[];

/** Queued and not running: where an add puts a job, so the API writes it at once and the recorder need not. */
export const WAITING_STATUSES = ["waiting", "waiting-children", "delayed"] as const satisfies readonly JobStatus[];

/** Statuses of a job BullMQ itself can finish with (a cancel is flowd's own). */
export const BULLMQ_FINISHED_STATUSES = ["completed", "failed"] as const satisfies readonly FinishedStatus[];

/** A flow's statuses: running until its root job finishes, then the root's outcome. */
export const FLOW_STATUSES = ["running", "completed", "failed", "cancelled"] as const;
export type FlowStatus = (typeof FLOW_STATUSES)[number];

const finished: ReadonlySet<string> = new Set(FINISHED_STATUSES);
export const isFinished = (status: string): status is FinishedStatus => finished.has(status);

/** `'a', 'b'`: a status list as SQL literals, for partial indexes and queries that must match them by text. */
export const sqlLiterals = (statuses: readonly string[]): string => statuses.map((s) => `'${s}'`).join(", ");

/**
 * What BullMQ reports while an `http` task is parked (waiting for its callback): the delay that
 * holds it, its wake-up and the re-run that applies the callback. The job row stays `active`.
 */
export const PARKED_BULLMQ_STATUSES = ["delayed", "waiting", "active"] as const satisfies readonly JobStatus[];
