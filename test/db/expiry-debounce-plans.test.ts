import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PgDialect } from "drizzle-orm/pg-core";
import { releaseDebouncedQuery } from "../../src/db/queries/debounce";
import { overdueJobsSql } from "../../src/db/queries/expiry";
import { createTestDatabase } from "../helpers/db";

// The expiry sweep and the debounce release run in every worker process's enqueuer pass, each
// second, for as long as flowd runs: each must go through its partial index (a generic plan,
// sequential scans ruled out), never over every job ever written.
let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

const planOf = async ({ sql: text, params }: { sql: string; params: unknown[] }) => {
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

describe("the expiry sweep and the debounce release use their partial indexes", () => {
  test("expiry: overdue jobs of both tables", async () => {
    const plan = await planOf(new PgDialect().sqlToQuery(overdueJobsSql(200)));
    expect(plan).toContain("flow_jobs_expiry_idx");
    expect(plan).toContain("jobs_expiry_idx");
  });

  test("debounce: windows that have ended", async () => {
    expect(await planOf(releaseDebouncedQuery(t.database.db, 200).toSQL())).toContain("jobs_debounce_until_idx");
  });
});
