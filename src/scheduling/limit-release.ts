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
import { ensureLimitKeys, lockUserLimits, readPassState, releasedJobRows, writePass } from "../db/queries/limits";
import type { Config } from "../config";
import type { JobOpts } from "../job-opts";
import { markJobsUnqueued } from "../db/queries/jobs";
import type { Logger } from "../log";
import { limitsChannel, type Producer } from "../queues";
import { enqueueJobs } from "../services/enqueue-jobs";
import { planRelease, type HeldJob } from "./limit-plan";
import { keySettingsOf } from "./limits";
import { addReleased } from "./release";

/**
 * Held jobs read per turn key and round: few, since a pass reads every key's; a key that lets all of
 * them go (a raised limit, many slots freed at once) gets another round in the same pass.
 */
const HELD_PER_KEY = 8;
const MAX_ROUNDS = 50;

export interface LimitRelease {
  jobs: string[];
  /** The released single jobs' rows, read in the pass's transaction for the add after it (no read after the commit). */
  jobRows: ReleasedJobRow[];
  flowJobs: string[];
  /** When a rate-limited key with jobs waiting may start its next one (epoch ms, the database's clock). */
  wakeAtMs: number | null;
}

type ReleasedJobRow = Awaited<ReturnType<typeof releasedJobRows>>[number];

/** A pass that let nothing go. */
export const noRelease = (): LimitRelease => ({ jobs: [], jobRows: [], flowJobs: [], wakeAtMs: null });

/**
 * Takes the user's lock and gives the keys the jobs' `opts` name their settings where they have none
 * (keySettingsOf's rule), inside the caller's transaction. The lock comes before any key row: every
 * pass takes it first, so none waits on a key row a create holds.
 */
export async function ensureKeysWithin(tx: DbOrTx, userId: string, opts: Iterable<JobOpts | Record<string, unknown>>) {
  await lockUserLimits(tx, userId);
  await ensureLimitKeys(tx, userId, keySettingsOf(opts));
}

/** One user's pass inside the caller's transaction; the lock it takes is held until that commits. */
export async function releaseWithin(tx: DbOrTx, userId: string): Promise<LimitRelease> {
  const out = noRelease();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    // Read after the lock (every process measures rate limits by the database's clock), in one
    // statement. The first round sends both at once: Postgres runs a connection's statements in
    // order, so the read still starts (and takes its snapshot) only once the lock is held.
    const state =
      round === 0
        ? (await Promise.all([lockUserLimits(tx, userId), readPassState(tx, userId, HELD_PER_KEY)]))[1]
        : await readPassState(tx, userId, HELD_PER_KEY);
    if (state.held.length === 0) return out;
    const plan = planRelease(state.keys, state.running, state.held, state.nowMs);
    out.wakeAtMs = plan.wakeAtMs;
    if (plan.release.length === 0 && plan.reasons.length === 0 && plan.keys.length === 0) return out;
    // The released single jobs' rows come back in the same round trip: the read runs after the
    // write on this connection, in this transaction, so it sees what the write let go.
    const releasing = plan.release.filter((j) => j.tbl === "jobs").map((j) => j.id);
    const [written, rows] = await Promise.all([writePass(tx, userId, plan), releasing.length > 0 ? releasedJobRows(tx, releasing) : []]);
    out.jobs.push(...written.jobs);
    out.jobRows.push(...rows);
    out.flowJobs.push(...written.flowJobs);
    if (!tookAll(state.held, plan.release)) return out;
  }
  return out;
}

/** Whether some turn key let go of every held job read for it: more may be waiting behind them. */
function tookAll(held: HeldJob[], released: HeldJob[]) {
  const count = (jobs: HeldJob[]) => {
    const n = new Map<string, number>();
    for (const j of jobs) n.set(turnKeyOf(j), (n.get(turnKeyOf(j)) ?? 0) + 1);
    return n;
  };
  const read = count(held);
  for (const [key, n] of count(released)) if (n === HELD_PER_KEY && read.get(key) === n) return true;
  return false;
}

const turnKeyOf = (j: HeldJob) => j.concurrencyKeys?.[0] ?? j.rateKey!;

/** A pass per user, each in its own transaction; what they released, merged. */
export async function releaseForUsers(db: Db, userIds: Iterable<string>): Promise<LimitRelease> {
  const all = noRelease();
  for (const userId of new Set(userIds)) {
    const r = await db.transaction((tx) => releaseWithin(tx, userId));
    all.jobs.push(...r.jobs);
    all.jobRows.push(...r.jobRows);
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
  await deps.producer.signal(limitsChannel(prefix), String(released.wakeAtMs)).catch((err) =>
    deps.log.debug("could not ring the limit sweepers", { err: String(err) }),
  );
}

/** Adds released rows to Redis after their pass committed; a failed add leaves them to the enqueuer. */
export async function addLimitReleased(
  deps: { db: Db; producer: Producer; log: Logger },
  released: Pick<LimitRelease, "jobs" | "flowJobs"> & Partial<Pick<LimitRelease, "jobRows">>,
) {
  if (released.jobs.length > 0) {
    const rows = released.jobRows ?? (await releasedJobRows(deps.db, released.jobs));
    // Back to `pending` for the enqueuer if Redis refused (the rows were written where the add puts them).
    if (rows.length > 0 && !(await enqueueJobs(deps, rows))) await markJobsUnqueued(deps.db, rows.map((r) => r.id));
  }
  if (released.flowJobs.length > 0) await addReleased(deps, released.flowJobs);
}

/**
 * A pass for a user's held jobs in a transaction of its own (a create's held rows, a retry that held
 * jobs again, a cancel that freed a slot), the keys `opts` name first getting their settings; then
 * the sweepers rung and what it let go added to Redis. Resolves to what it released.
 */
export async function releaseAndAdd(
  /** Without `config`, the sweepers are not rung: they find a rate-limited job within a second. */
  deps: { db: Db; producer: Producer; log: Logger; config?: Pick<Config, "prefix"> },
  userId: string,
  opts: Iterable<JobOpts | Record<string, unknown>> = [],
): Promise<LimitRelease> {
  const released = await deps.db.transaction(async (tx) => {
    await ensureKeysWithin(tx, userId, opts);
    return releaseWithin(tx, userId);
  });
  if (deps.config) await ringSweepers(deps, deps.config.prefix, released);
  await addLimitReleased(deps, released).catch((err) => deps.log.warn("released jobs not yet in Redis; the enqueuer will add them", { err: String(err) }));
  return released;
}

/**
 * Runs passes for users as they are rung, one pass at a time, folding rings that arrive meanwhile
 * into the next: the status recorder rings it after each batch and goes on recording, so a pass
 * never holds up the events behind it, and a burst of batches costs one pass per user, not one each.
 * A pass's adds to Redis finish before the next pass starts: a pass costs Postgres a few ms however
 * little it lets go, so rings folded while the adds run make fewer, fuller passes under load.
 */
export function createLimitReleaser(deps: { db: Db; producer: () => Producer; log: Logger }) {
  const waiting = new Set<string>();
  let running: Promise<void> | null = null;
  const drain = async () => {
    while (waiting.size > 0) {
      const users = [...waiting];
      waiting.clear();
      try {
        const released = await releaseForUsers(deps.db, users);
        await addLimitReleased({ ...deps, producer: deps.producer() }, released);
      } catch (err) {
        // The sweeper repeats what failed here within a second.
        deps.log.warn("could not release jobs held for limits; the sweeper will", { count: users.length, err: String(err) });
      }
    }
    running = null;
  };
  return {
    ring(userIds: string[]) {
      for (const u of userIds) waiting.add(u);
      running ??= drain();
    },
    /** Resolves once the passes rung so far have run. */
    async idle() {
      while (running) await running;
    },
  };
}
