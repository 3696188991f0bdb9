import { and, eq, isNull, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { apiTokens, users } from "../schema";
import { newId } from "../../ids";
import { preparedPerDb } from "./prepared";

/** Returns the user's id, creating the user when the name is new. */
export async function upsertUser(db: DbOrTx, name: string): Promise<string> {
  const [row] = await db
    .insert(users)
    .values({ id: newId(), name })
    .onConflictDoUpdate({ target: users.name, set: { name: sql`excluded.name` } })
    .returning({ id: users.id });
  return row!.id;
}

export async function insertToken(db: DbOrTx, t: { userId: string; tokenHash: string; prefix: string }) {
  await db.insert(apiTokens).values({ id: newId(), ...t });
}

const userByTokenHash = preparedPerDb((db) =>
  db
    .select({ tokenId: apiTokens.id, userId: apiTokens.userId, userName: users.name })
    .from(apiTokens)
    .innerJoin(users, eq(users.id, apiTokens.userId))
    .where(and(eq(apiTokens.tokenHash, sql.placeholder("tokenHash")), isNull(apiTokens.revokedAt)))
    .limit(1)
    .prepare("flowd_user_by_token_hash"),
);

/** Every request without a cached token comes through here, so the statement is prepared. */
export async function findUserByTokenHash(db: DbOrTx, tokenHash: string) {
  const [row] = await userByTokenHash(db).execute({ tokenHash });
  return row;
}

/** Marks a token used at most once a minute, so authentication does not write on every request. */
export async function touchToken(db: DbOrTx, tokenId: string) {
  await db
    .update(apiTokens)
    .set({ lastUsedAt: sql`now()` })
    .where(and(eq(apiTokens.id, tokenId), sql`(${apiTokens.lastUsedAt} is null or ${apiTokens.lastUsedAt} < now() - interval '1 minute')`));
}

export async function hasAnyToken(db: DbOrTx): Promise<boolean> {
  const rows = await db.select({ id: apiTokens.id }).from(apiTokens).where(isNull(apiTokens.revokedAt)).limit(1);
  return rows.length > 0;
}
