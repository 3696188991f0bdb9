/**
 * Release passes for per-key limits (limits.ts, limit-plan.ts): under the user's lock, count each
 * key's running jobs from the rows, read the first held jobs of each turn key, and let go of those
 * the limits allow now. Passes run after a create's insert (same transaction), after each recorder
 * batch that finished a limited job, after `PUT /v1/limits/:key`, and from the sweeper (on a rate
 * limit's next start time, and every second for what no other pass saw: a cancel, a crash between
 * a commit and its pass). Released rows are `pending` without a hold: the caller adds them to Redis
 * after the commit (addLimitReleased); if it never does, the enqueuer does.
 */
import type { Db, DbOrTx } from "../db/client";
import {
  heldJobs,
  lockUserLimits,
  releasedJobRows,
  releaseHeld,
  runningPerKey,
  saveKeyStates,
  setHeldReason,
  userLimitKeys,
} from "../db/queries/limits";
import { sql } from "drizzle-orm";
import type { Logger } from "../log";
import { limitsChannel, type Producer } from "../queues";
import { enqueueJobs } from "../services/enqueue-jobs";
import { planRelease } from "./limit-plan";
import { addReleased } from "./release";

/** Held jobs read per turn key and pass: more than one pass can release for a key at any sane limit. */
const HELD_PER_KEY = 50;

export interface LimitRelease {
  jobs: string[];
  flowJobs: string[];
  /** When a rate-limited key with jobs waiting may start its next one (epoch ms, the database's clock). */
  wakeAtMs: number | null;
}

const none = (): LimitRelease => ({ jobs: [], flowJobs: [], wakeAtMs: null });

/** One user's pass inside the caller's transaction; the lock it takes is held until that commits. */
export async function releaseWithin(tx: DbOrTx, userId: string): Promise<LimitRelease> {
  await lockUserLimits(tx, userId);
  // The database's clock, after the lock: every process measures rate limits by the same clock.
  const [now] = await tx.execute<{ ms: number }>(sql`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`);
  const held = await heldJobs(tx, userId, HELD_PER_KEY);
  if (held.length === 0) return none();
  const keys = await userLimitKeys(tx, userId);
  const plan = planRelease(keys, await runningPerKey(tx, userId), held, now!.ms);
  const released = none();
  released.wakeAtMs = plan.wakeAtMs;
  released.jobs = await releaseHeld(tx, "jobs", plan.release.filter((j) => j.tbl === "jobs").map((j) => j.id));
  released.flowJobs = await releaseHeld(tx, "flow_jobs", plan.release.filter((j) => j.tbl === "flow_jobs").map((j) => j.id));
  for (const reason of ["concurrency", "rateLimit"] as const)
    for (const tbl of ["jobs", "flow_jobs"] as const) {
      const ids = plan.reasons.filter((r) => r.reason === reason && r.job.tbl === tbl).map((r) => r.job.id);
      await setHeldReason(tx, tbl, ids, reason);
    }
  await saveKeyStates(tx, userId, plan.keys);
  return released;
}

/** A pass per user, each in its own transaction; what they released, merged. */
export async function releaseForUsers(db: Db, userIds: Iterable<string>): Promise<LimitRelease> {
  const all = none();
  for (const userId of new Set(userIds)) {
    const r = await db.transaction((tx) => releaseWithin(tx, userId));
    all.jobs.push(...r.jobs);
    all.flowJobs.push(...r.flowJobs);
    if (r.wakeAtMs !== null) all.wakeAtMs = Math.min(all.wakeAtMs ?? Infinity, r.wakeAtMs);
  }
  return all;
}

/**
 * Wakes the worker processes' limit sweepers (src/workers/limit-sweeper.ts) when a pass outside them
 * left jobs waiting on a rate limit: they would otherwise first look within a second. A doorbell
 * only; a lost ring costs that second.
 */
export async function ringSweepers(deps: { producer: Producer; log: Logger }, prefix: string, released: LimitRelease) {
  if (released.wakeAtMs === null) return;
  await deps.producer.redis.publish(limitsChannel(prefix), String(released.wakeAtMs)).catch((err) =>
    deps.log.debug("could not ring the limit sweepers", { err: String(err) }),
  );
}

/** Adds released rows to Redis after their pass committed; a failed add leaves them to the enqueuer. */
export async function addLimitReleased(deps: { db: Db; producer: Producer; log: Logger }, released: Pick<LimitRelease, "jobs" | "flowJobs">) {
  if (released.jobs.length > 0) {
    const rows = await releasedJobRows(deps.db, released.jobs);
    if (rows.length > 0) await enqueueJobs(deps, rows);
  }
  if (released.flowJobs.length > 0) await addReleased(deps, released.flowJobs);
}
