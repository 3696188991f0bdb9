import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import postgres from "postgres";
import { createTestDatabase } from "../helpers/db";
import { openPgQueues, type PgQueues } from "../../src/pg-queues";
import { createLogger } from "../../src/log";
import { keepAllEvents, pgBacklog, readPgEvents, trimRecorded } from "../../src/services/pg-events";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let q: PgQueues;
let sql: postgres.Sql;
beforeAll(async () => {
  db = await createTestDatabase();
  q = await openPgQueues({ databaseUrl: db.url, queueSchema: "bq_events" }, createLogger("silent"));
  sql = postgres(db.url, { max: 4, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await q?.close();
  await db?.drop();
});

const publish = (conn: postgres.Sql | postgres.ReservedSql | postgres.TransactionSql, queue: string, jobId: string) =>
  conn`select bq_events.publish_event(${queue}, 'completed', ${conn.json({ jobId, returnvalue: "1" })}::jsonb) as id`;

describe("reading BullMQ's Postgres event table", () => {
  test("an event whose transaction commits after a later one's is still read (no id cursor skips it)", async () => {
    const early = await sql.reserve();
    try {
      await early`begin`;
      // Drawn first (lower id, older transaction), committed last.
      const [first] = await publish(early, "qa", "early");
      const [second] = await sql.begin((tx) => publish(tx, "qa", "late"));
      expect(Number(first!.id)).toBeLessThan(Number(second!.id));
      // The later transaction is committed, but an older one is still open: nothing is read past it.
      const held = await readPgEvents(q.pool, q.schema, [{ queue: "qa", cursor: "0" }], 100);
      expect(held).toEqual([]);
      await early`commit`;
    } finally {
      early.release();
    }
    const read = await readPgEvents(q.pool, q.schema, [{ queue: "qa", cursor: "0" }], 100);
    expect(read.map((e) => e.flat[3])).toEqual(["early", "late"]);
    // Each entry's id carries its time, like a Redis entry's; each cursor its transaction.
    expect(Number(read[0]!.id.split("-")[0])).toBeGreaterThan(Date.now() - 60_000);
    // From the last cursor on: nothing again, then only what is new.
    expect(await readPgEvents(q.pool, q.schema, [{ queue: "qa", cursor: read[1]!.cursor }], 100)).toEqual([]);
    await sql.begin((tx) => publish(tx, "qa", "third"));
    const more = await readPgEvents(q.pool, q.schema, [{ queue: "qa", cursor: read[1]!.cursor }], 100);
    expect(more.map((e) => e.flat[3])).toEqual(["third"]);
  });

  test("a transaction open in another database of the server does not hold reading back", async () => {
    const other = postgres(db.url.replace(/\/[^/]+$/, "/postgres"), { max: 1, onnotice: () => {} });
    const conn = await other.reserve();
    try {
      await conn`begin`;
      await conn`select pg_current_xact_id()`; // holds an xid, as a writing transaction does
      await sql.begin((tx) => publish(tx, "qd", "while-other-open"));
      const read = await readPgEvents(q.pool, q.schema, [{ queue: "qd", cursor: "0" }], 100);
      expect(read.map((e) => e.flat[3])).toEqual(["while-other-open"]);
      await conn`rollback`;
    } finally {
      conn.release();
      await other.end({ timeout: 1 });
    }
  });

  test("pages by the limit, in the same order a whole read gives", async () => {
    await sql.begin(async (tx) => {
      for (let i = 0; i < 7; i++) await publish(tx, "qb", `j${i}`);
    });
    const all = await readPgEvents(q.pool, q.schema, [{ queue: "qb", cursor: "0" }], 100);
    const paged: string[] = [];
    let cursor = "0";
    for (;;) {
      const page = await readPgEvents(q.pool, q.schema, [{ queue: "qb", cursor }], 3);
      if (page.length === 0) break;
      paged.push(...page.map((e) => e.flat[3]!));
      cursor = page[page.length - 1]!.cursor;
    }
    expect(paged).toEqual(all.map((e) => e.flat[3]!));
    expect(paged).toHaveLength(7);
  });

  test("BullMQ is told to keep every event, and only events behind a committed cursor are deleted", async () => {
    await sql`insert into bq_events.meta (queue, field, value) values ('qc', 'opts.maxLenEvents', '10000')`;
    expect(await keepAllEvents(q.pool, q.schema, ["qc"])).toEqual(["qc"]);
    expect(await keepAllEvents(q.pool, q.schema, ["qc"])).toEqual([]);
    await sql.begin((tx) => publish(tx, "qc", "a"));
    await sql.begin((tx) => publish(tx, "qc", "b"));
    const [a, b] = await readPgEvents(q.pool, q.schema, [{ queue: "qc", cursor: "0" }], 100);
    // Nothing committed yet: nothing deleted, and the backlog counts both.
    expect(await trimRecorded(q.pool, q.schema, ["qc"], 0)).toBe(0);
    expect((await pgBacklog(q.pool, q.schema, [{ queue: "qc", cursor: "0" }])).get("qc")!.length).toBe(2);
    await sql`insert into stream_cursors (queue, last_id, updated_at) values ('bq_events.qc', ${a!.cursor}, now())`;
    expect(await trimRecorded(q.pool, q.schema, ["qc"], 0)).toBe(1);
    const left = await readPgEvents(q.pool, q.schema, [{ queue: "qc", cursor: "0" }], 100);
    expect(left.map((e) => e.cursor)).toEqual([b!.cursor]);
    const backlog = (await pgBacklog(q.pool, q.schema, [{ queue: "qc", cursor: a!.cursor }])).get("qc")!;
    expect(backlog.length).toBe(1);
    expect(backlog.lagMs).toBeGreaterThanOrEqual(0);
  });
});

test("the pool resolves BullMQ's names in FLOWD_QUEUE_SCHEMA", async () => {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const { rows } = await client.query("select count(*)::int as n from information_schema.tables where table_schema = 'bq_events' and table_name = 'event'");
    expect(rows[0].n).toBe(1);
  } finally {
    await client.end();
  }
});
