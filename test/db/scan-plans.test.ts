import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PgDialect } from "drizzle-orm/pg-core";
import { listFlowsQuery, pendingFlowsQuery, queuedFlowsQuery } from "../../src/db/queries/flows";
import { pendingJobsQuery, queuedJobsQuery } from "../../src/db/queries/jobs";
import { staleJoinsSql } from "../../src/db/queries/spawn";
import { createTestDatabase } from "../helpers/db";

// The enqueuer and the reconciler scan for unfinished rows every few seconds, for as long as flowd
// runs. Each scan must go through its partial index, whatever the table holds: with a generic plan
// (what Postgres settles on for a statement run many times) and sequential scans ruled out, the
// plan must still name the index. A status bound as a parameter would fail this.
let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

/** The generic plan of a query: prepared by name, so no parameter's value can shape the plan. */
const planOf = async (query: { toSQL(): { sql: string; params: unknown[] } }) => {
  const { sql: text, params } = query.toSQL();
  const literal = (v: unknown) => (typeof v === "number" ? String(v) : `'${String(v).replaceAll("'", "''")}'`);
  const conn = await t.database.sql.reserve();
  try {
    await conn.unsafe("set enable_seqscan = off");
    await conn.unsafe("set plan_cache_mode = force_generic_plan");
    await conn.unsafe(`prepare scan_plan as ${text}`);
    const rows = await conn.unsafe(`explain execute scan_plan${params.length ? `(${params.map(literal).join(", ")})` : ""}`);
    await conn.unsafe("deallocate scan_plan");
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    conn.release();
  }
};

describe("background scans use their partial indexes", () => {
  test.each([
    ["enqueuer: flows with pending jobs", () => pendingFlowsQuery(t.database.db, 3_000, 50), "flow_jobs_pending_idx"],
    ["enqueuer: pending single jobs", () => pendingJobsQuery(t.database.db, 3_000, 200), "jobs_pending_idx"],
    ["reconciler: flows with queued jobs", () => queuedFlowsQuery(t.database.db, 10_000, 100, "c0"), "flow_jobs_queued_idx"],
    ["reconciler: queued single jobs", () => queuedJobsQuery(t.database.db, 10_000, 500), "jobs_queued_idx"],
    ["enqueuer: joins over that nothing woke", () => ({ toSQL: () => new PgDialect().sqlToQuery(staleJoinsSql(3_000, 200)) }), "flow_jobs_joins_idx"],
  ] as const)("%s", async (_name, query, index) => {
    expect(await planOf(query())).toContain(index);
  });
});

describe("flows of one definition, schedule or event are found through their indexes", () => {
  test.each([
    ["?definition=", () => listFlowsQuery(t.database.db, "u1", { definition: "nightly-etl", limit: 21 }), "flows_user_definition_idx"],
    ["?scheduleId=", () => listFlowsQuery(t.database.db, "u1", { scheduleId: "c0", limit: 21 }), "flows_schedule_idx"],
    ["?eventId=", () => listFlowsQuery(t.database.db, "u1", { eventId: "c0", limit: 21 }), "flows_event_idx"],
  ] as const)("%s", async (_name, query, index) => {
    expect(await planOf(query())).toContain(index);
  });
});
