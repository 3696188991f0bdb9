import { afterAll, beforeAll, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { pruneDeliveries } from "../../src/db/queries/webhooks";
import { createToken } from "../../src/services/tokens";
import { createTestDatabase } from "../helpers/db";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

test("delivery attempts older than the retention are pruned; newer ones are kept", async () => {
  const { userId } = await createToken(db.database.db, "alice");
  await db.database.db.execute(sql`insert into webhooks (id, user_id, url, events, secret) values ('wh1', ${userId}, 'http://127.0.0.1:1/h', '["flow.completed"]', 's')`);
  // Ids follow time, as they do when attempts are written: 30 old ones, then 5 recent.
  const ages = [...Array.from({ length: 30 }, (_, i) => 200 - i), 5, 4, 3, 2, 1];
  for (const [i, hours] of ages.entries())
    await db.database.db.execute(sql`
      insert into webhook_deliveries (webhook_id, event_seq, attempt, status_code, duration_ms, created_at)
      values ('wh1', ${i + 1}, 1, 200, 3, now() - make_interval(hours => ${hours}))`);
  expect(await pruneDeliveries(db.database.db, 168)).toBe(30);
  const left = await db.database.db.execute<{ n: number; oldest: number }>(
    sql`select count(*)::int as n, max(extract(epoch from now() - created_at) / 3600)::int as oldest from webhook_deliveries`,
  );
  expect(left[0]!.n).toBe(5);
  expect(left[0]!.oldest).toBeLessThanOrEqual(168);
  // Nothing newer than the retention: a second run deletes nothing.
  expect(await pruneDeliveries(db.database.db, 168)).toBe(0);
  // Everything old (no attempt newer than the cut): all go.
  expect(await pruneDeliveries(db.database.db, 0)).toBe(5);
  expect((await db.database.db.execute<{ n: number }>(sql`select count(*)::int as n from webhook_deliveries`))[0]!.n).toBe(0);
});
