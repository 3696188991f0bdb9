import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { insertJob } from "../../src/db/queries/jobs";
import { newJobRow } from "../../src/services/jobs";
import { createTestDatabase } from "../helpers/db";

// The event triggers log a job that parks or un-parks without a status change (issue #27), with
// `waitingFor` in the shape job views use; every writer gets the same events (they are the database's).
let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const eventsOf = async (id: string) =>
  (await db.database.sql<{ status: string; data: Record<string, unknown> }[]>`
    select status, data from events where job_id = ${id} and type = 'job.updated' order by seq`).map((e) => ({ status: e.status, waitingFor: e.data.waitingFor }));

describe("job.updated events say what a job waits for", () => {
  test("a held job released from its limit, and one moved from one limit to another, each log one event", async () => {
    const row = newJobRow("u1", { name: "echo" }, { waitingFor: "concurrency", concurrencyKeys: ["acme", "region-1"], rateKey: "acme-api" });
    await insertJob(db.database.db, row);
    // Creating it logs nothing (flow.created / the first recorded change stand for creates).
    expect(await eventsOf(row.id)).toEqual([]);
    await db.database.sql`update jobs set waiting_for = 'rateLimit', updated_at = now() where id = ${row.id}`;
    await db.database.sql`update jobs set waiting_for = null, updated_at = now() where id = ${row.id}`;
    // An update that changes neither status nor waiting_for is no event.
    await db.database.sql`update jobs set updated_at = now() where id = ${row.id}`;
    expect(await eventsOf(row.id)).toEqual([
      { status: "pending", waitingFor: { reason: "rateLimit", key: "acme-api" } },
      { status: "pending", waitingFor: undefined },
    ]);
  });

  test("a running job that parks on a signal says its key and deadline; one without a deadline says none; waking clears it", async () => {
    const row = newJobRow("u1", { name: "signal", data: { key: "order-7" } }, { status: "active" });
    await insertJob(db.database.db, row);
    const until = new Date(Date.now() + 3_600_000);
    await db.database.sql`update jobs set waiting_for = 'signal', parked_until = ${until.toISOString()}::timestamptz where id = ${row.id}`;
    await db.database.sql`update jobs set waiting_for = null, parked_until = null where id = ${row.id}`;
    // A wait without timeout parks 100 years out: views (and so events) leave that `until` out.
    await db.database.sql`update jobs set waiting_for = 'approval', parked_until = now() + interval '36500 days' where id = ${row.id}`;
    await db.database.sql`update jobs set status = 'completed', waiting_for = null, parked_until = null where id = ${row.id}`;
    expect(await eventsOf(row.id)).toEqual([
      { status: "active", waitingFor: { reason: "signal", key: "order-7", until: until.toISOString() } },
      { status: "active", waitingFor: undefined },
      { status: "active", waitingFor: { reason: "approval" } },
      { status: "completed", waitingFor: undefined },
    ]);
  });

  test("a debounced job's event carries its key and window; a finished row's waiting_for is not an event", async () => {
    const until = new Date(Date.now() + 5_000);
    const row = newJobRow("u1", { name: "echo" }, { waitingFor: "debounce", debounceKey: "sync-1", debounceUntil: until } as never);
    await insertJob(db.database.db, row);
    await db.database.sql`update jobs set debounce_key = 'sync-1', debounce_until = ${until.toISOString()}::timestamptz, waiting_for = null where id = ${row.id}`;
    await db.database.sql`update jobs set waiting_for = 'debounce' where id = ${row.id}`;
    await db.database.sql`update jobs set status = 'cancelled', waiting_for = null where id = ${row.id}`;
    await db.database.sql`update jobs set waiting_for = 'debounce' where id = ${row.id}`;
    expect(await eventsOf(row.id)).toEqual([
      { status: "pending", waitingFor: undefined },
      { status: "pending", waitingFor: { reason: "debounce", key: "sync-1", until: until.toISOString() } },
      { status: "cancelled", waitingFor: undefined },
    ]);
  });
});
