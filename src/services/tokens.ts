import { createHash, randomBytes } from "node:crypto";
import type { Db } from "../db/client";
import { findUserByTokenHash, insertToken, touchToken, upsertUser } from "../db/queries/users";

export const TOKEN_PREFIX = "flowd_";

export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Creates the user if needed and a new token for it; the token itself is returned once and never stored. */
export async function createToken(db: Db, userName: string): Promise<{ token: string; userId: string; prefix: string }> {
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const prefix = token.slice(0, TOKEN_PREFIX.length + 6);
  const userId = await db.transaction(async (tx) => {
    const id = await upsertUser(tx, userName);
    await insertToken(tx, { userId: id, tokenHash: hashToken(token), prefix });
    return id;
  });
  return { token, userId, prefix };
}

/** True when `token` belongs to a user (a kept dev token is checked before it is printed again). */
export async function tokenIsValid(db: Db, token: string): Promise<boolean> {
  return (await findUserByTokenHash(db, hashToken(token))) !== undefined;
}

export interface AuthUser {
  userId: string;
  userName: string;
}

/**
 * Resolves bearer tokens to users. A short cache keeps authentication off the database on hot paths;
 * a revoked token stops working within `ttlMs`.
 */
export function createAuthenticator(db: Db, ttlMs = 5_000) {
  const cache = new Map<string, { user: AuthUser | null; until: number }>();
  return async function authenticate(token: string): Promise<AuthUser | null> {
    const hash = hashToken(token);
    const now = Date.now();
    const hit = cache.get(hash);
    if (hit && hit.until > now) return hit.user;
    const row = await findUserByTokenHash(db, hash);
    const user = row ? { userId: row.userId, userName: row.userName } : null;
    if (cache.size > 10_000) cache.clear();
    cache.set(hash, { user, until: now + ttlMs });
    if (row) touchToken(db, row.tokenId).catch(() => {});
    return user;
  };
}
export type Authenticate = ReturnType<typeof createAuthenticator>;
