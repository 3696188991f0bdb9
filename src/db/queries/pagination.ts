import { and, eq, lt, or, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";

/** Rows strictly after `before` in newest-first (created_at, id) order: keyset pages never skip or repeat. */
export function olderThan(createdAt: PgColumn, id: PgColumn, before: { createdAt: Date; id: string }): SQL {
  return or(lt(createdAt, before.createdAt), and(eq(createdAt, before.createdAt), lt(id, before.id)))!;
}
