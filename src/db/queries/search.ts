import { sql, type SQL } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";

/** `column` starts with `prefix`, taken literally: `%`, `_` and `\` in it match only themselves. */
export const namePrefix = (column: AnyPgColumn, prefix: string): SQL =>
  sql`${column} like ${prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + "%"}`;
