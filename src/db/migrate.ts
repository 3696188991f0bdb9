import { createHash } from "node:crypto";
import type { Sql } from "postgres";
import { migrations as embedded, type EmbeddedMigration } from "./migrations.generated";
import type { Logger } from "../log";

/** Any constant works; it only has to be the same for every flowd process on a database. */
const MIGRATION_LOCK = 7244119000;

/**
 * Applies the embedded migrations not yet recorded, each in its own transaction, holding a
 * session advisory lock so that processes starting together apply each migration exactly once.
 * Bookkeeping uses drizzle-kit's own table, so `drizzle-kit migrate` and flowd agree.
 */
export async function migrate(sql: Sql, log?: Logger, migrations: EmbeddedMigration[] = embedded): Promise<number> {
  const conn = await sql.reserve();
  try {
    await conn`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await conn.unsafe(`create schema if not exists drizzle;
        create table if not exists drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint)`);
      const [last] = await conn<{ when: string | null }[]>`select max(created_at)::text as when from drizzle.__drizzle_migrations`;
      const appliedUpTo = Number(last?.when ?? 0);
      let applied = 0;
      for (const m of migrations) {
        if (m.when <= appliedUpTo) continue;
        await conn.unsafe("begin");
        try {
          for (const statement of m.sql.split("--> statement-breakpoint")) {
            if (statement.trim()) await conn.unsafe(statement);
          }
          const hash = createHash("sha256").update(m.sql).digest("hex");
          await conn`insert into drizzle.__drizzle_migrations (hash, created_at) values (${hash}, ${m.when})`;
          await conn.unsafe("commit");
        } catch (err) {
          await conn.unsafe("rollback");
          throw new Error(`migration ${m.tag} failed: ${(err as Error).message}`);
        }
        applied++;
        log?.info("migration applied", { migration: m.tag });
      }
      return applied;
    } finally {
      await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    conn.release();
  }
}
