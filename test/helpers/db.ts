import postgres from "postgres";
import { createDb, type Database } from "../../src/db/client";
import { TEMPLATE_DB, dbUrl } from "./services";

let counter = 0;

/** A database of its own for one test file, cloned from the migrated template; drop() removes it. */
export async function createTestDatabase(): Promise<{ name: string; url: string; database: Database; drop(): Promise<void> }> {
  const name = `flowd_t_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const admin = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${TEMPLATE_DB}"`);
  } finally {
    await admin.end({ timeout: 1 });
  }
  const url = dbUrl(name);
  const database = createDb(url, { max: 5 });
  return {
    name,
    url,
    database,
    async drop() {
      await database.close();
      await dropDatabase(name);
    },
  };
}

export async function dropDatabase(name: string) {
  const admin = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end({ timeout: 1 });
  }
}
