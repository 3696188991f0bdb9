import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestDatabase } from "../helpers/db";
import { beat, endWait, offerCallback, parkOffer } from "../../src/db/queries/http-tasks";
import { waitFor } from "../helpers/wait";

// The worker's statements on a parked http task and a callback's complete touch the same two rows,
// the job's and its callback's. Taken in opposite orders they deadlock, and Postgres ends one: here
// the worker's park, after its service already answered 202 (and called back), which fails the attempt.
let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
  await t.database.sql`insert into users (id, name) values ('u1', 'lock-order')`;
});
afterAll(async () => {
  await t?.drop();
});

/** Sessions of this database waiting on a lock. */
const lockWaiters = async () =>
  Number(
    (await t.database.sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)[0]!.n,
  );

describe("a callback racing the worker on a parked http task", () => {
  test("neither deadlocks: the park waits its turn on the job row and then finds the outcome", async () => {
    const jobId = "j-lock-order";
    await t.database.sql`insert into jobs (id, job_id, user_id, name, queue_name, data, opts, status)
      values ('r1', ${jobId}, 'u1', 'http', 'jobs', '{}', '{}', 'active')`;
    const tokenHash = "h-lock-order";
    expect(await offerCallback(t.database.db, { tokenHash, jobId, attempt: 0, deadline: new Date(Date.now() + 60_000) })).toBeDefined();

    // The callback's statement (STORE_OUTCOME) in its own order, held open between its two steps:
    // the job row first, then the callback row. The worker's park arrives in between.
    const callback = await t.database.sql.reserve();
    await callback`begin`;
    await callback`select 1 from jobs where job_id = ${jobId} for update`;
    const parking = parkOffer(t.database.db, { tokenHash, table: "jobs", jobId, attempt: 0, deadline: new Date(Date.now() + 60_000), heartbeatTimeoutMs: null });
    await waitFor(async () => (await lockWaiters()) >= 1, 5_000, "the park waiting on the job row");
    const completing = (async () => {
      await callback`update task_callbacks set outcome = ${JSON.stringify({ kind: "complete", result: { ok: 1 } })}::jsonb where token_hash = ${tokenHash}`;
      await callback`update jobs set status = 'completed', result = '{"ok":1}' where job_id = ${jobId}`;
      await callback`commit`;
    })().catch(async (err) => { await callback`rollback`; throw err; }).finally(() => callback.release());
    const [stored, parked] = await Promise.allSettled([completing, parking]);
    if (stored.status === "rejected") throw stored.reason;
    if (parked.status === "rejected") throw parked.reason; // before the fix: deadlock detected (40P01)
    // The callback came first: the park finds its outcome and applies it at once.
    expect(parked.value?.outcome).toEqual({ kind: "complete", result: { ok: 1 } });
    const [row] = await t.database.sql`select status, result from jobs where job_id = ${jobId}`;
    expect(row).toMatchObject({ status: "completed", result: { ok: 1 } });
  }, 30_000);
  test("a timeout ending the wait as a callback lands takes its turn too, and the callback wins", async () => {
    const jobId = "j-lock-order-2";
    await t.database.sql`insert into jobs (id, job_id, user_id, name, queue_name, data, opts, status, parked_until)
      values ('r2', ${jobId}, 'u1', 'http', 'jobs', '{}', '{}', 'active', now())`;
    const tokenHash = "h-lock-order-2";
    await offerCallback(t.database.db, { tokenHash, jobId, attempt: 0, deadline: new Date(Date.now() - 1_000) });
    await t.database.sql`update task_callbacks set parked_at = now() where token_hash = ${tokenHash}`;
    const callback = await t.database.sql.reserve();
    await callback`begin`;
    await callback`select 1 from jobs where job_id = ${jobId} for update`;
    const timingOut = endWait(t.database.db, { tokenHash, table: "jobs", jobId, resolution: "timed_out", unpark: true });
    await waitFor(async () => (await lockWaiters()) >= 1, 5_000, "the timeout waiting on the job row");
    const completing = (async () => {
      await callback`update task_callbacks set outcome = ${JSON.stringify({ kind: "complete", result: 2 })}::jsonb where token_hash = ${tokenHash}`;
      await callback`commit`;
    })().catch(async (err) => { await callback`rollback`; throw err; }).finally(() => callback.release());
    const [stored, timedOut] = await Promise.allSettled([completing, timingOut]);
    if (stored.status === "rejected") throw stored.reason;
    if (timedOut.status === "rejected") throw timedOut.reason; // before the fix: deadlock detected (40P01)
    expect(timedOut.value).toBe(false); // the callback came first: no timeout
  }, 30_000);
  test("a heartbeat beside the complete takes its turn too, and finds the wait over", async () => {
    const jobId = "j-lock-order-3";
    await t.database.sql`insert into jobs (id, job_id, user_id, name, queue_name, data, opts, status, parked_until)
      values ('r3', ${jobId}, 'u1', 'http', 'jobs', '{}', '{}', 'active', now() + interval '1 minute')`;
    const tokenHash = "h-lock-order-3";
    await offerCallback(t.database.db, { tokenHash, jobId, attempt: 0, deadline: new Date(Date.now() + 60_000) });
    await t.database.sql`update task_callbacks set parked_at = now(), heartbeat_timeout_ms = 10000 where token_hash = ${tokenHash}`;
    const callback = await t.database.sql.reserve();
    await callback`begin`;
    await callback`select 1 from jobs where job_id = ${jobId} for update`;
    const beating = beat(t.database.db, tokenHash);
    await waitFor(async () => (await lockWaiters()) >= 1, 5_000, "the heartbeat waiting on the job row");
    const completing = (async () => {
      await callback`update task_callbacks set outcome = ${JSON.stringify({ kind: "complete", result: 3 })}::jsonb where token_hash = ${tokenHash}`;
      await callback`commit`;
    })().catch(async (err) => { await callback`rollback`; throw err; }).finally(() => callback.release());
    const [stored, beaten] = await Promise.allSettled([completing, beating]);
    if (stored.status === "rejected") throw stored.reason;
    if (beaten.status === "rejected") throw beaten.reason; // before the fix: deadlock detected (40P01), a 500
    expect(beaten.value).toBeUndefined(); // the complete came first: nothing waits for a heartbeat any more
  }, 30_000);
});
