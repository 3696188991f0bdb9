import { sql, type SQL } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";

/** `column` is more than `ms` milliseconds in the past: rows left alone that long by their usual writer. */
export const untouchedFor = (column: AnyPgColumn, ms: number): SQL => sql`${column} < now() - make_interval(secs => ${ms / 1000})`;
