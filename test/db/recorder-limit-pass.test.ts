import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { insertJob } from "../../src/db/queries/jobs";
import { ensureLimitKeys } from "../../src/db/queries/limits";
import { recordStatusBatchOn } from "../../src/db/queries/status";
import { releaseWithin } from "../../src/scheduling/limit-release";
import { newJobRow } from "../../src/services/jobs";
import { toStatusChange } from "../../src/services/status";
import { createToken } from "../../src/services/tokens";
import { createTestDatabase } from "../helpers/db";

// The recorder's batch and the release pass it triggers commit together (issue #26): the slot a
// finished job frees goes to the key's next job in the same transaction, with one commit.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let userId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  userId = (await createToken(db.database.db, "limits")).userId;
});
afterAll(() => db.drop());

const clientOf = (tx: unknown) => (tx as { session: { client: Pick<Sql, "unsafe"> } }).session.client;

test("a batch that finishes a limited job releases the key's next held job in its own transaction", async () => {
  await ensureLimitKeys(db.database.db, userId, [{ key: "acme", concurrency: 1, rateMax: null, ratePerMs: null }]);
  const running = newJobRow(userId, { name: "echo" }, { status: "active", concurrencyKeys: ["acme"] });
  const held = newJobRow(userId, { name: "echo" }, { waitingFor: "concurrency", concurrencyKeys: ["acme"] });
  await insertJob(db.database.db, running);
  await insertJob(db.database.db, held);
  const done = toStatusChange({ queue: "jobs", id: "1795917347000-1", fields: { event: "completed", jobId: running.jobId, returnvalue: "1" } })!;

  const outcome = await db.database.db.transaction(async (tx) => {
    const written = await recordStatusBatchOn(clientOf(tx), [{ table: "jobs", change: done }], new Map([["jobs", "1795917347000-1"]]), true);
    expect(written.limitUsers).toEqual([userId]);
    // The statement took the user's limits lock: another session cannot take it until this commits.
    const [other] = await db.database.sql<{ got: boolean }[]>`select pg_try_advisory_xact_lock(hashtextextended(${"flowd-limits:" + userId}, 0)) as got`;
    expect(other!.got).toBe(false);
    return tx.transaction((sp) => releaseWithin(sp, userId));
  });
  expect(outcome.jobs).toEqual([held.id]);
  const rows = await db.database.sql<{ id: string; status: string; waiting_for: string | null }[]>`
    select id, status, waiting_for from jobs where id in (${running.id}, ${held.id})`;
  const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
  expect(byId[running.id]!.status).toBe("completed");
  expect(byId[held.id]).toMatchObject({ status: "waiting", waiting_for: null });
  // Both transitions are in the log: the completion, then the release.
  const events = await db.database.sql<{ job_id: string; status: string }[]>`
    select job_id, status from events where job_id in (${running.id}, ${held.id}) order by seq`;
  expect(events.map((e) => [e.job_id, e.status])).toEqual([
    [running.id, "completed"],
    [held.id, "waiting"],
  ]);
});

test("a batch whose transaction fails writes neither the finish nor the release", async () => {
  const running = newJobRow(userId, { name: "echo" }, { status: "active", concurrencyKeys: ["acme"] });
  const held = newJobRow(userId, { name: "echo" }, { waitingFor: "concurrency", concurrencyKeys: ["acme"] });
  await insertJob(db.database.db, running);
  await insertJob(db.database.db, held);
  const done = toStatusChange({ queue: "jobs", id: "1795917349000-1", fields: { event: "completed", jobId: running.jobId, returnvalue: "1" } })!;
  const failed = await db.database.db
    .transaction(async (tx) => {
      await recordStatusBatchOn(clientOf(tx), [{ table: "jobs", change: done }], new Map(), true);
      await tx.transaction((sp) => releaseWithin(sp, userId));
      throw new Error("the commit never happened");
    })
    .catch((err: Error) => err.message);
  expect(failed).toBe("the commit never happened");
  const rows = await db.database.sql<{ id: string; status: string }[]>`select id, status from jobs where id in (${running.id}, ${held.id}) order by status`;
  expect(rows.map((r) => r.status).sort()).toEqual(["active", "pending"]);
});

test("without the lock flag the statement takes no user lock (batches of deployments without limits stay one statement)", async () => {
  const running = newJobRow(userId, { name: "echo" }, { status: "active", concurrencyKeys: ["acme"] });
  await insertJob(db.database.db, running);
  const done = toStatusChange({ queue: "jobs", id: "1795917348000-1", fields: { event: "completed", jobId: running.jobId, returnvalue: "1" } })!;
  await db.database.db.transaction(async (tx) => {
    const written = await recordStatusBatchOn(clientOf(tx), [{ table: "jobs", change: done }], new Map(), false);
    expect(written.limitUsers).toEqual([userId]);
    const [other] = await db.database.sql<{ got: boolean }[]>`select pg_try_advisory_xact_lock(hashtextextended(${"flowd-limits:" + userId}, 0)) as got`;
    expect(other!.got).toBe(true);
  });
});
