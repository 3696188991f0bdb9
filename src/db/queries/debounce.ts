import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { jobs } from "../schema";
import type { JobRow } from "./jobs";
import { LIMIT_HOLD } from "./graph-release";

/** A debounced job held out of Redis while its window is open (the unique index's predicate). */
const held = sql`${jobs.waitingFor} = 'debounce' and ${jobs.status} = 'pending'`;

/**
 * A debounced create in one statement: a new held row, or — when the user's key has an open window —
 * that row takes this create's name, data and options, its window starts again from now (the
 * database's clock, so API hosts' clocks do not matter) and its count goes up. Concurrent creates
 * meet at the unique index, so they always collapse into one row.
 */
export async function upsertDebounced(db: DbOrTx, row: JobRow, key: string, ms: number): Promise<JobRow> {
  const until = sql`now() + ${ms} * interval '1 millisecond'`;
  const [stored] = await db
    .insert(jobs)
    .values({ ...row, status: "pending", readyAt: null, waitingFor: "debounce", debounceKey: key, debounceUntil: until, debounced: 0 })
    .onConflictDoUpdate({
      target: [jobs.userId, jobs.debounceKey],
      targetWhere: held,
      set: {
        name: sql`excluded.name`,
        queueName: sql`excluded.queue_name`,
        data: sql`excluded.data`,
        opts: sql`excluded.opts`,
        // The newest create's limits are the job's, as its options are.
        concurrencyKeys: sql`excluded.concurrency_keys`,
        rateKey: sql`excluded.rate_key`,
        debounceUntil: sql`excluded.debounce_until`,
        debounced: sql`${jobs.debounced} + 1`,
        updatedAt: sql`now()`,
      },
    })
    .returning();
  return stored!;
}

/**
 * Debounced jobs whose window has ended lose their hold and are returned for the caller to add to
 * Redis (a row whose add fails is a plain `pending` row the enqueuer adds later); one under per-key
 * limits takes its limit hold instead (`waitingFor` set), for a release pass to let go in its turn. A create moving a
 * window on holds the row's lock: such a row is skipped now and looked at again next pass.
 */
export async function releaseDebounced(db: DbOrTx, limit: number): Promise<JobRow[]> {
  return releaseDebouncedQuery(db, limit);
}

/** The statement behind `releaseDebounced`, for a test to check its plan. */
export const releaseDebouncedQuery = (db: DbOrTx, limit: number) =>
  db
    .update(jobs)
    .set({ waitingFor: sql.raw(LIMIT_HOLD("jobs")), updatedAt: sql`now()` })
    .where(
      sql`${jobs.id} in (select id from jobs where waiting_for = 'debounce' and status = 'pending' and debounce_until <= now()
                         order by debounce_until limit ${limit} for update skip locked)`,
    )
    .returning();
