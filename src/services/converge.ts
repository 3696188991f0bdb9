/**
 * Brings Postgres rows to the state Redis holds for their jobs, for when the event stream cannot
 * say: entries trimmed before the recorder read them, or a row the reconciler finds stale.
 */
import type { RedisClient as Redis } from "../redis";
import type { Db } from "../db/client";
import { applyStatusBatch, unfinishedJobIds, type TrackedTable } from "../db/queries/status";
import type { Shard } from "../shards";
import { changeFromState, readJobStates, type JobRef, type RedisJobState } from "./redis-job-state";

const PAGE = 500;

interface ConvergeDeps {
  db: Db;
  redis: Redis;
  prefix: string;
}

/** For a whole queue: which shard's rows (`prefix` is its key prefix), and the name its stream cursor is stored under. */
interface QueueConvergeDeps extends ConvergeDeps {
  shard: Shard;
  cursor: string;
}

/**
 * Writes each job's Redis state (jobs Redis no longer has are left to the reconciler), positioned at
 * `streamId`, a stream entry read before the states were: later entries still apply on top of it.
 * Returns the rows changed.
 */
export async function convergeJobs(deps: ConvergeDeps, table: TrackedTable, jobs: JobRef[], streamId: string, cursors = new Map<string, string>()) {
  const states = await readJobStates(deps.redis, deps.prefix, jobs);
  return writeStates(deps, table, jobs, states, streamId, cursors);
}

export async function writeStates(
  deps: Pick<ConvergeDeps, "db">,
  table: TrackedTable,
  jobs: JobRef[],
  states: RedisJobState[],
  streamId: string,
  cursors = new Map<string, string>(),
) {
  const changes = jobs.flatMap((job, i) => {
    const state = states[i];
    return state ? [{ table, change: changeFromState(job.jobId, state, streamId) }] : [];
  });
  if (changes.length === 0 && cursors.size === 0) return 0;
  return applyStatusBatch(deps.db, changes, cursors);
}

/**
 * Converges every unfinished row of one queue, a page at a time, and stores the queue's stream
 * cursor at `upTo` with the last page: a crash part-way leaves the cursor where it was, so the next
 * recorder finds the same gap and converges again. `step` runs each page's work (the caller adds
 * retries and its own stop condition); it returns undefined to abandon.
 */
export async function convergeQueue(
  deps: QueueConvergeDeps,
  table: TrackedTable,
  queue: string,
  upTo: string,
  step: <T>(what: string, fn: () => Promise<T>) => Promise<T | undefined>,
): Promise<number | undefined> {
  let after = "";
  let changed = 0;
  for (;;) {
    const ids = await step("read unfinished jobs", () => unfinishedJobIds(deps.db, table, queue, deps.shard, after, PAGE));
    if (ids === undefined) return undefined;
    const last = ids.length < PAGE;
    const jobs = ids.map((jobId) => ({ queueName: queue, jobId }));
    const cursors = last ? new Map([[deps.cursor, upTo]]) : new Map<string, string>();
    const written = await step("converge job states from Redis", () => convergeJobs(deps, table, jobs, upTo, cursors));
    if (written === undefined) return undefined;
    changed += written;
    if (last) return changed;
    after = ids[ids.length - 1]!;
  }
}
