import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { applyStatusBatch } from "../../src/db/queries/status";
import { collapse, toStatusChange } from "../../src/services/status";
import type { StatusChange } from "../../src/db/queries/status";
import { createToken } from "../../src/services/tokens";
import { newJobRow } from "../../src/services/jobs";
import { insertJob } from "../../src/db/queries/jobs";
import { createTestDatabase } from "../helpers/db";

// The guard that makes at-least-once delivery of BullMQ's events harmless, against real Postgres.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let userId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  userId = (await createToken(db.database.db, "status")).userId;
});
afterAll(async () => {
  await db?.drop();
});

const change = (jobId: string, event: string, streamId: string, extra: Record<string, string> = {}) =>
  toStatusChange({ queue: "jobs", id: streamId, fields: { event, jobId, ...extra } })!;

async function freshJob() {
  const row = newJobRow(userId, { name: "echo" });
  await insertJob(db.database.db, row);
  return row.id;
}

const apply = (changes: StatusChange[], cursor = "0-0") =>
  applyStatusBatch(db.database.db, collapse(changes).map((c) => ({ table: "jobs" as const, change: c })), new Map([["jobs", cursor]]));

const statusOf = async (id: string) =>
  (await db.database.sql<{ status: string; attempts_made: number }[]>`select status, attempts_made from jobs where id = ${id}`)[0];

describe("status changes from BullMQ's event stream", () => {
  test("events in the same millisecond apply in stream order (ids beyond a double's precision)", async () => {
    const id = await freshJob();
    // Same ms, consecutive sequence numbers: as numbers they would collide.
    expect(await apply([change(id, "active", "1795917342759-5")])).toBe(1);
    expect(await apply([change(id, "completed", "1795917342759-6", { returnvalue: '{"ok":true}' })])).toBe(1);
    expect(await statusOf(id)).toEqual({ status: "completed", attempts_made: 1 });
  });

  test("a stale or repeated event changes nothing", async () => {
    const id = await freshJob();
    await apply([change(id, "active", "1795917342760-1"), change(id, "completed", "1795917342760-2", { returnvalue: "1" })]);
    expect(await apply([change(id, "active", "1795917342760-1")])).toBe(0);
    expect(await apply([change(id, "completed", "1795917342760-2", { returnvalue: "1" })])).toBe(0);
    expect(await statusOf(id)).toEqual({ status: "completed", attempts_made: 1 });
  });

  test("a removal never overwrites a finished job, and cancelled is final", async () => {
    const done = await freshJob();
    await apply([change(done, "completed", "1795917342761-1", { returnvalue: "1" })]);
    await apply([change(done, "removed", "1795917342761-2")]);
    expect((await statusOf(done))?.status).toBe("completed");

    const cancelled = await freshJob();
    await db.database.sql`update jobs set status = 'cancelled' where id = ${cancelled}`;
    await apply([change(cancelled, "completed", "1795917342762-1", { returnvalue: "1" })]);
    expect((await statusOf(cancelled))?.status).toBe("cancelled");
  });

  test("a batch folds to one change per job and counts every start", async () => {
    const id = await freshJob();
    const folded = collapse([
      change(id, "waiting", "1795917342763-1"),
      change(id, "active", "1795917342763-2"),
      change(id, "delayed", "1795917342763-3"),
      change(id, "active", "1795917342763-4"),
      change(id, "completed", "1795917342763-5", { returnvalue: "2" }),
    ]);
    expect(folded).toHaveLength(1);
    expect(folded[0]).toMatchObject({ status: "completed", starts: 2, streamId: "1795917342763-5" });
    await apply(folded);
    expect(await statusOf(id)).toEqual({ status: "completed", attempts_made: 2 });
  });

  test("a folded batch keeps the last run's times: ready at its last waiting, started at its last start", async () => {
    const id = await freshJob();
    const t = 1795917342000;
    await apply([
      change(id, "waiting", `${t + 100}-0`),
      change(id, "active", `${t + 200}-0`),
      // A retry: back to waiting, then a second start that completes.
      change(id, "waiting", `${t + 300}-0`),
      change(id, "active", `${t + 450}-0`),
      change(id, "completed", `${t + 1450}-0`, { returnvalue: "1" }),
    ]);
    const [row] = await db.database.sql<{ ready: number; started: number; finished: number }[]>`
      select (extract(epoch from ready_at) * 1000)::float8 as ready, (extract(epoch from started_at) * 1000)::float8 as started,
        (extract(epoch from finished_at) * 1000)::float8 as finished from jobs where id = ${id}`;
    expect(row).toEqual({ ready: t + 300, started: t + 450, finished: t + 1450 } as never);
    // Across batches too; a later waiting clears the finish (BullMQ retried it), a start is kept until the next.
    await apply([change(id, "waiting", `${t + 2000}-0`)]);
    const [again] = await db.database.sql<{ finished: string | null; started: string }[]>`select finished_at as finished, started_at as started from jobs where id = ${id}`;
    expect(again!.finished).toBeNull();
    expect(new Date(again!.started).getTime()).toBe(t + 450);
  });

  test("a delayed job's ready time is when its delay or backoff ends, as BullMQ's entry says; its promotion replaces it", async () => {
    const id = await freshJob();
    const t = 1795917342000;
    const ready = async () =>
      (await db.database.sql<{ ready: number }[]>`select (extract(epoch from ready_at) * 1000)::float8 as ready from jobs where id = ${id}`)[0]!.ready;
    await apply([change(id, "active", `${t}-0`), change(id, "delayed", `${t + 50}-0`, { delay: String(t + 5_050) })]);
    expect(await ready()).toBe(t + 5_050);
    await apply([change(id, "waiting", `${t + 5_060}-0`)]);
    expect(await ready()).toBe(t + 5_060);
  });

  describe("the event log holds every transition, in order, though a batch writes one row change per job", () => {
    const logged = async (ids: string[]) =>
      (await db.database.sql<{ job_id: string; status: string; data: Record<string, unknown> }[]>`
        select job_id, status, data from events where job_id = any(${ids}) and type = 'job.updated' order by seq`).map((e) => [e.job_id, e.status, "result" in e.data]);

    test("interleaved jobs: each transition logged once, in stream order (only the last carries the result); one row change per job", async () => {
      const a = await freshJob();
      const b = await freshJob();
      const t = 1795917343000;
      const batch = [
        change(a, "waiting", `${t}-1`),
        change(b, "waiting", `${t}-2`),
        change(a, "active", `${t}-3`),
        change(b, "active", `${t + 1}-0`),
        change(a, "completed", `${t + 2}-0`, { returnvalue: "1" }),
        change(b, "failed", `${t + 3}-0`, { failedReason: "boom" }),
      ];
      const folded = collapse(batch);
      expect(folded).toHaveLength(2);
      expect(await apply(batch)).toBe(2);
      expect(await logged([a, b])).toEqual([
        [a, "waiting", false],
        [b, "waiting", false],
        [a, "active", false],
        [b, "active", false],
        [a, "completed", true],
        [b, "failed", expect.any(Boolean)],
      ]);
      // Read again (a crash before the cursor moved, a second recorder): nothing new.
      expect(await apply(batch)).toBe(0);
      expect(await logged([a, b])).toHaveLength(6);
    });

    test("a batch read again after part of it was recorded logs only what is newer than the row", async () => {
      const id = await freshJob();
      const t = 1795917344000;
      await apply([change(id, "waiting", `${t}-1`), change(id, "active", `${t}-2`)]);
      await apply([change(id, "waiting", `${t}-1`), change(id, "active", `${t}-2`), change(id, "completed", `${t}-3`, { returnvalue: "1" })]);
      expect((await logged([id])).map((e) => e[1])).toEqual(["waiting", "active", "completed"]);
    });

    test("a retry inside one batch: every start and the return to waiting are logged; a status the row already had is not logged again", async () => {
      const id = await freshJob();
      await db.database.sql`update jobs set status = 'waiting' where id = ${id}`;
      const t = 1795917345000;
      await apply([
        change(id, "waiting", `${t}-1`),
        change(id, "active", `${t}-2`),
        change(id, "waiting", `${t}-3`),
        change(id, "active", `${t}-4`),
        change(id, "completed", `${t}-5`, { returnvalue: "1" }),
      ]);
      // The first event is the API's own update to waiting; the batch's first waiting repeats it.
      expect((await logged([id])).map((e) => e[1])).toEqual(["waiting", "active", "waiting", "active", "completed"]);
      expect(await statusOf(id)).toEqual({ status: "completed", attempts_made: 2 });
    });

    test("one doorbell per commit: a batch of many jobs rings once", async () => {
      const ids = await Promise.all(Array.from({ length: 20 }, () => freshJob()));
      const rings: string[] = [];
      const listener = await db.database.sql.listen("flowd_events", (p) => rings.push(p));
      const t = 1795917346000;
      await apply(ids.flatMap((id, i) => [change(id, "active", `${t + i}-1`), change(id, "completed", `${t + i}-2`, { returnvalue: "1" })]));
      const top = Number((await db.database.sql<{ s: string }[]>`select max(seq)::text as s from events`)[0]!.s);
      for (let i = 0; i < 100 && rings.length === 0; i++) await Bun.sleep(20);
      await Bun.sleep(200);
      await listener.unlisten();
      expect(rings).toHaveLength(1);
      // It names a seq of that commit; readers read the log after what they handled.
      expect(Number(rings[0])).toBeLessThanOrEqual(top);
      expect(Number(rings[0])).toBeGreaterThan(top - 40);
    });
  });
});

