import { and, desc, eq, isNull, not, or, sql, type Placeholder } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { definitions, definitionVersions } from "../schema";
import { newestFirst, olderThan } from "./pagination";
import { preparedPerDb } from "./prepared";

export type DefinitionRow = typeof definitions.$inferSelect;
export type DefinitionVersionRow = typeof definitionVersions.$inferSelect;

/** Owned by this user, or (null) registered by a handler module for every user. */
const ownedBy = (userId: string | null) => (userId === null ? isNull(definitions.userId) : eq(definitions.userId, userId));

/** What a user sees: their own definitions and the modules' — their own first where both have a name. */
const visibleTo = (userId: string | Placeholder) => or(eq(definitions.userId, userId), isNull(definitions.userId))!;
const ownFirst = sql`${definitions.userId} is null`;

/** The definition's row, created when new, locked for the rest of the transaction (versions are numbered under it). */
export async function lockOrCreateDefinition(tx: DbOrTx, userId: string | null, name: string, id: string): Promise<DefinitionRow> {
  await tx.insert(definitions).values({ id, userId, name }).onConflictDoNothing();
  const [row] = await tx.select().from(definitions).where(and(ownedBy(userId), eq(definitions.name, name))).for("update").limit(1);
  return row!;
}

/** A live (not deleted) definition by name: the user's own, else a module's. */
export async function findDefinition(db: DbOrTx, userId: string, name: string): Promise<DefinitionRow | undefined> {
  const [row] = await db
    .select()
    .from(definitions)
    .where(and(visibleTo(userId), eq(definitions.name, name), isNull(definitions.deletedAt)))
    .orderBy(ownFirst)
    .limit(1);
  return row;
}

/** Whether a name is the user's own (live or deleted) and whether a module registered it. */
export async function nameOwners(db: DbOrTx, userId: string, name: string) {
  const rows = await db.select({ userId: definitions.userId }).from(definitions).where(and(visibleTo(userId), eq(definitions.name, name)));
  return { own: rows.some((r) => r.userId !== null), module: rows.some((r) => r.userId === null) };
}

export async function findVersion(db: DbOrTx, definitionId: string, version: number): Promise<DefinitionVersionRow | undefined> {
  const [row] = await db
    .select()
    .from(definitionVersions)
    .where(and(eq(definitionVersions.definitionId, definitionId), eq(definitionVersions.version, version)))
    .limit(1);
  return row;
}

export async function insertVersion(tx: DbOrTx, row: typeof definitionVersions.$inferInsert) {
  await tx.insert(definitionVersions).values(row);
  await tx
    .update(definitions)
    .set({ latestVersion: row.version, deletedAt: null, updatedAt: sql`now()` })
    .where(eq(definitions.id, row.definitionId));
}

/** A definition deleted earlier and PUT again with its last body: live again, with no new version. */
export async function undelete(tx: DbOrTx, id: string) {
  await tx.update(definitions).set({ deletedAt: null, updatedAt: sql`now()` }).where(eq(definitions.id, id));
}

/** The versions' numbers and dates, newest first (their bodies stay in the table). */
export async function versionsOf(db: DbOrTx, definitionId: string) {
  return db
    .select({ version: definitionVersions.version, description: definitionVersions.description, createdAt: definitionVersions.createdAt })
    .from(definitionVersions)
    .where(eq(definitionVersions.definitionId, definitionId))
    .orderBy(desc(definitionVersions.version))
    .limit(1000);
}

export async function listDefinitions(db: DbOrTx, userId: string, q: { limit: number; before?: { createdAt: Date; id: string } }) {
  // A module's definition is hidden where the user has a live one of the same name.
  const shadowed = sql`("definitions"."user_id" is null and exists (select 1 from definitions own where own.user_id = ${userId} and own.name = "definitions"."name" and own.deleted_at is null))`;
  const conditions = [visibleTo(userId), isNull(definitions.deletedAt), not(shadowed)];
  if (q.before) conditions.push(olderThan(definitions.createdAt, definitions.id, q.before));
  return db.select().from(definitions).where(and(...conditions)).orderBy(...newestFirst(definitions.createdAt, definitions.id)).limit(q.limit);
}

export async function markDeleted(db: DbOrTx, userId: string, name: string): Promise<boolean> {
  const gone = await db
    .update(definitions)
    .set({ deletedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(definitions.userId, userId), eq(definitions.name, name), isNull(definitions.deletedAt)))
    .returning({ id: definitions.id });
  return gone.length > 0;
}

// Read on every run of a definition: prepared once per database handle (see prepared.ts).
const runnable = preparedPerDb((db) =>
  db
    .select({ definition: definitions, version: definitionVersions })
    .from(definitions)
    .leftJoin(
      definitionVersions,
      and(
        eq(definitionVersions.definitionId, definitions.id),
        eq(definitionVersions.version, sql`coalesce(${sql.placeholder("version")}::int, ${definitions.latestVersion})`),
      ),
    )
    .where(and(visibleTo(sql.placeholder("userId")), eq(definitions.name, sql.placeholder("name")), isNull(definitions.deletedAt)))
    .orderBy(ownFirst)
    .limit(1)
    .prepare("flowd_runnable_definition"),
);

/** A live definition (the user's own, else a module's) with one version (its latest when `version` is absent), in one round trip; either may be missing. */
export async function findRunnable(db: DbOrTx, userId: string, name: string, version?: number) {
  const [row] = await runnable(db).execute({ userId, name, version: version ?? null });
  return row;
}
