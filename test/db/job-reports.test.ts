import { afterAll, beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { appendLogLines, recordProgress, reportsOf } from "../../src/db/queries/job-reports";
import { insertJob } from "../../src/db/queries/jobs";
import { newJobRow } from "../../src/services/jobs";
import { createTestDatabase } from "../helpers/db";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const lines = (n: number, text = "x") => Array.from({ length: n }, (_, i) => ({ at: new Date().toISOString(), line: `${text}${i}` }));

test("a job keeps at most 1,000 lines and 64 KiB of log; the rest is counted as dropped; each append is a job.log event", async () => {
  const row = newJobRow("u1", { name: "echo" });
  await insertJob(db.database.db, row);
  await appendLogLines(db.database.db, row.id, lines(990));
  await appendLogLines(db.database.db, row.id, lines(20, "y"));
  let report = (await reportsOf(db.database.db, [row.id])).get(row.id)!;
  expect(report.lines).toHaveLength(1000);
  expect(report.lines[999]!.line).toBe("y9");
  expect(report.dropped).toBe(10);

  const big = newJobRow("u1", { name: "echo" });
  await insertJob(db.database.db, big);
  await appendLogLines(db.database.db, big.id, Array.from({ length: 20 }, () => ({ at: "t", line: "z".repeat(4000) })));
  report = (await reportsOf(db.database.db, [big.id])).get(big.id)!;
  expect(report.lines).toHaveLength(16);
  expect(report.bytes).toBe(64_000);
  expect(report.dropped).toBe(4);

  const events = await db.database.db.execute(sql`select type, job_id, data from events where type = 'job.log' order by seq`);
  expect(events.map((e: any) => [e.job_id, e.data.lines?.length ?? e.data.lines])).toEqual([
    // Like results, an event's lines over 4 KiB travel as a size: GET the job for them.
    [row.id, { truncated: true, bytes: expect.any(Number) }],
    [row.id, 10],
    [big.id, { truncated: true, bytes: expect.any(Number) }],
  ]);
});

test("progress is set by BullMQ id, the last one per batch wins, and a change is a job.progress event", async () => {
  const row = newJobRow("u1", { name: "echo" });
  await insertJob(db.database.db, row);
  await recordProgress(db.database.db, [
    { jobId: row.jobId, progress: 10 },
    { jobId: row.jobId, progress: { step: 2, of: 3 } },
    { jobId: "not-a-flowd-job", progress: 99 },
  ]);
  expect((await reportsOf(db.database.db, [row.id])).get(row.id)!.progress).toEqual({ step: 2, of: 3 });
  await recordProgress(db.database.db, [{ jobId: row.jobId, progress: { step: 2, of: 3 } }]);
  const events = await db.database.db.execute(sql`select data from events where type = 'job.progress' and job_id = ${row.id}`);
  expect(events.map((e: any) => e.data)).toEqual([{ id: row.id, progress: { step: 2, of: 3 } }]);
  expect((await db.database.db.execute(sql`select count(*)::int as n from job_reports`))[0]).toEqual({ n: 3 });
});
