import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { renderMigrationsModule } from "../../scripts/embed-migrations";
import { migrations } from "../../src/db/migrations.generated";
import { dropDatabase } from "../helpers/db";
import { REPO, runFlowd } from "../helpers/process";
import { dbUrl } from "../helpers/services";

describe("embedded migrations", () => {
  test("src/db/migrations.generated.ts is up to date with drizzle/ (run `bun run db:generate`)", () => {
    const committed = readFileSync(join(REPO, "src/db/migrations.generated.ts"), "utf8");
    expect(committed).toBe(renderMigrationsModule(REPO));
  });

  test("the embedded migrations are in journal order with increasing timestamps", () => {
    expect(migrations.length).toBeGreaterThan(0);
    for (let i = 1; i < migrations.length; i++) expect(migrations[i]!.when).toBeGreaterThan(migrations[i - 1]!.when);
  });
});

describe("flowd migrate", () => {
  const name = `flowd_t_migrate_${process.pid}_${Date.now().toString(36)}`;
  const url = dbUrl(name);
  const admin = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  let sql: ReturnType<typeof postgres> | null = null;

  afterAll(async () => {
    await sql?.end({ timeout: 1 });
    await admin.end({ timeout: 1 });
    await dropDatabase(name);
  });

  /** A connection to the migrated database, opened once it exists. */
  const conn = () => (sql ??= postgres(url, { max: 1, onnotice: () => {} }));

  const migrationRows = async () => {
    const [row] = await conn()<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
    return row!.n;
  };

  const appliedLines = (stdout: string) =>
    stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg: string; migration?: string; applied?: number });

  test("three processes started at once against a missing database all succeed, applying each migration once", async () => {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    expect(exists).toBeUndefined();

    const env = { DATABASE_URL: url, LOG_LEVEL: "info" };
    const runs = await Promise.all([runFlowd(["migrate"], env), runFlowd(["migrate"], env), runFlowd(["migrate"], env)]);
    for (const r of runs) {
      if (r.code !== 0) throw new Error(`flowd migrate exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
      expect(r.code).toBe(0);
    }

    const [created] = await admin`select 1 as one from pg_database where datname = ${name}`;
    expect(created).toEqual({ one: 1 });

    expect(await migrationRows()).toBe(migrations.length);

    // Each migration was applied by exactly one of the three processes.
    const applied = runs.flatMap((r) => appliedLines(r.stdout).filter((l) => l.msg === "migration applied").map((l) => l.migration));
    expect(applied.sort()).toEqual(migrations.map((m) => m.tag).sort());
    const totals = runs.map((r) => appliedLines(r.stdout).find((l) => l.msg === "migrations up to date")?.applied);
    expect(totals.reduce((a, b) => a! + b!, 0)).toBe(migrations.length);

    const tables = await conn()<{ table_name: string }[]>`
      select table_name from information_schema.tables where table_schema = 'public'`;
    const names = tables.map((t) => t.table_name);
    for (const table of ["users", "api_tokens", "flows", "flow_jobs", "jobs", "events"]) expect(names).toContain(table);
  });

  test("a fourth run applies nothing", async () => {
    const before = await migrationRows();
    const r = await runFlowd(["migrate"], { DATABASE_URL: url, LOG_LEVEL: "info" });
    expect(r.code).toBe(0);
    const lines = appliedLines(r.stdout);
    expect(lines.filter((l) => l.msg === "migration applied")).toHaveLength(0);
    expect(lines.find((l) => l.msg === "migrations up to date")?.applied).toBe(0);
    expect(await migrationRows()).toBe(before);
    expect(before).toBe(migrations.length);
  });
});
