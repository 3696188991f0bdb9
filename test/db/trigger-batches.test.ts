import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { insertJobs } from "../../src/db/queries/jobs";
import { newJobRow } from "../../src/services/jobs";
import { createTestDatabase } from "../helpers/db";

/**
 * The statement triggers log every transition and keep the tallies the same way whatever a
 * statement's size: past 200 rows they plan their old/new joins on the call (drizzle/0031), below
 * it they keep PL/pgSQL's cached plan. One session runs both sizes, small first, as the recorder
 * does (a cached plan from a small batch is what made large ones quadratic).
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

async function jobsOf(n: number) {
  const rows = Array.from({ length: n }, (_, i) => newJobRow("u1", { name: "echo", data: { i } }, { status: "waiting" }));
  await insertJobs(db.database.db, rows);
  return rows.map((r) => r.id);
}

const sql = () => db.database.sql;

async function runThrough(ids: string[]) {
  // One statement per transition, as a recorder batch writes them; event_pos moves as recorded rows' do.
  await sql().begin(async (tx) => {
    await tx`update jobs set status = 'active', event_pos = 1, updated_at = now() where id = any(${ids})`;
  });
  await sql().begin(async (tx) => {
    await tx`update jobs set status = 'completed', event_pos = 2, updated_at = now() where id = any(${ids})`;
  });
}

const eventsPerJob = async (ids: string[]) =>
  sql()<{ job_id: string; statuses: string[] }[]>`
    select job_id, array_agg(status order by seq) as statuses from events
    where job_id = any(${ids}) and type = 'job.updated' group by job_id`;

const tallied = async () =>
  Object.fromEntries(
    (await sql()<{ status: string; n: number }[]>`select status, sum(n)::int as n from job_tallies where tbl = 'jobs' group by status`).map((r) => [r.status, r.n]),
  );

describe("statement triggers on batches of every size", () => {
  test("5 rows then 250 rows in one statement each: every job logs active then completed, once, and the tallies follow", async () => {
    const small = await jobsOf(5);
    const large = await jobsOf(250);
    const t0 = performance.now();
    await runThrough(small);
    await runThrough(large);
    const ms = performance.now() - t0;
    for (const ids of [small, large]) {
      const events = await eventsPerJob(ids);
      expect(events.length).toBe(ids.length);
      expect(events.every((e) => e.statuses.join() === "active,completed")).toBe(true);
    }
    const counts = await tallied();
    expect(counts.completed).toBe(255);
    expect(counts.waiting ?? 0).toBe(0);
    expect(counts.active ?? 0).toBe(0);
    // Linear, not quadratic: four statements over 255 rows are well under a second even on a loaded machine.
    expect(ms).toBeLessThan(5_000);
  });

  test("a 250-row statement that changes nothing logs nothing; one that changes only waiting_for logs each job once", async () => {
    const ids = await jobsOf(250);
    await sql()`update jobs set updated_at = now() where id = any(${ids})`;
    expect((await eventsPerJob(ids)).length).toBe(0);
    await sql()`update jobs set status = 'pending', waiting_for = 'concurrency', concurrency_keys = array['k'] where id = any(${ids})`;
    await sql()`update jobs set waiting_for = null where id = any(${ids})`;
    const events = await eventsPerJob(ids);
    expect(events.length).toBe(250);
    expect(events.every((e) => e.statuses.join() === "pending,pending")).toBe(true);
  });

  test("250 flows finishing in one statement log 250 flow events; 250 jobs' progress in one statement logs 250 progress events", async () => {
    const flowIds = Array.from({ length: 250 }, (_, i) => `bf${i}`);
    await sql()`insert into users (id, name) values ('u1', 'batch-user') on conflict do nothing`;
    await sql()`insert into flows (id, user_id, name, job_count) select unnest(${flowIds}::text[]), 'u1', 'batch', 1`;
    await sql()`update flows set status = 'cancelled' where id = any(${flowIds})`;
    const [flows] = await sql()<{ n: number }[]>`select count(*)::int as n from events where flow_id = any(${flowIds}) and type = 'flow.cancelled'`;
    expect(flows!.n).toBe(250);
    const ids = await jobsOf(250);
    await sql()`insert into job_reports (job_row_id) select unnest(${ids}::text[])`;
    await sql()`update job_reports set progress = '50'::jsonb where job_row_id = any(${ids})`;
    const [progress] = await sql()<{ n: number }[]>`select count(*)::int as n from events where job_id = any(${ids}) and type = 'job.progress'`;
    expect(progress!.n).toBe(250);
  });
});
