import { and, eq, lt, or, sql, type SQL } from "drizzle-orm";
import type { AnyPgColumn, PgColumn } from "drizzle-orm/pg-core";

/** Rows strictly after `before` in newest-first (created_at, id) order: keyset pages never skip or repeat. */
export function olderThan(createdAt: PgColumn, id: PgColumn, before: { createdAt: Date; id: string }): SQL {
  return or(lt(createdAt, before.createdAt), and(eq(createdAt, before.createdAt), lt(id, before.id)))!;
}

/**
 * Newest first, in the order the `(user_id, created_at desc, id desc)` indexes keep: drizzle-kit
 * writes `.desc()` index columns as `DESC NULLS LAST`, while a plain `ORDER BY … DESC` means NULLS
 * FIRST, which such an index cannot give, so Postgres read every row of the user and sorted them
 * (22 ms p50 at 100,000 flows). The columns are NOT NULL, so the results are the same.
 */
export const newestFirst = (createdAt: AnyPgColumn, id: AnyPgColumn): SQL[] => [sql`${createdAt} desc nulls last`, sql`${id} desc nulls last`];
