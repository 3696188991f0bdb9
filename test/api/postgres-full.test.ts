import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { isPostgresDown } from "../../src/api/plugins/errors";
import { createTestDatabase } from "../helpers/db";

// A Postgres with no connection slot left answers 53300: the API says 503 postgres_unavailable
// (retry shortly) rather than 500 internal_error. The error is Postgres' own, from a role whose
// connection limit is 0 (superusers are exempt from limits, so a role of its own is needed).
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const role = `flowd_full_${process.pid}`;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.database.sql.unsafe(`create role ${role} login connection limit 0`);
});
afterAll(async () => {
  await db.database.sql.unsafe(`drop role if exists ${role}`);
  await db.drop();
});

test("no connection slot left (53300) counts as Postgres unavailable; a wrong query does not", async () => {
  const url = new URL(db.url);
  url.username = role;
  const client = postgres(url.toString(), { max: 1, connect_timeout: 5, onnotice: () => {} });
  const err = await client`select 1`.then(() => null, (e: unknown) => e);
  await client.end({ timeout: 1 }).catch(() => {});
  expect((err as { code?: string }).code).toBe("53300");
  expect(isPostgresDown(err)).toBe(true);
  const wrong = await db.database.sql`select * from no_such_table`.then(() => null, (e: unknown) => e);
  expect(isPostgresDown(wrong)).toBe(false);
});
