import { and, eq, isNull, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { signingSecrets } from "../schema";

export type SigningSecretRow = typeof signingSecrets.$inferSelect;

export async function findSigningSecret(db: DbOrTx, userId: string): Promise<SigningSecretRow | undefined> {
  const [row] = await db.select().from(signingSecrets).where(eq(signingSecrets.userId, userId));
  return row;
}

/** Stores a first secret unless one exists (two first uses at once keep whichever came first). */
export async function insertSigningSecret(db: DbOrTx, userId: string, sealed: string): Promise<void> {
  await db.insert(signingSecrets).values({ userId, secret: sealed }).onConflictDoNothing();
}

/** The new secret signs from now on; the one it replaces signs alongside until `previousUntil`. */
export async function rotateSigningSecret(db: DbOrTx, userId: string, sealed: string, previousUntil: Date): Promise<SigningSecretRow | undefined> {
  const [row] = await db
    .update(signingSecrets)
    .set({ previousSecret: sql`${signingSecrets.secret}`, previousUntil, secret: sealed, rotatedAt: sql`now()` })
    .where(eq(signingSecrets.userId, userId))
    .returning();
  return row;
}

/** Signing secrets with a value still in clear (from before FLOWD_SECRET_KEY was set), a page at a time. */
export async function plaintextSigningSecrets(db: DbOrTx, sealedPattern: string, limit: number) {
  return db
    .select()
    .from(signingSecrets)
    .where(or(sql`${signingSecrets.secret} !~ ${sealedPattern}`, sql`${signingSecrets.previousSecret} !~ ${sealedPattern}`))
    .limit(limit);
}

/** Seals one user's secrets, only while they still hold what was read (compare-and-set). */
export async function replaceSigningSecrets(db: DbOrTx, row: SigningSecretRow, sealed: { secret: string; previousSecret: string | null }): Promise<boolean> {
  const changed = await db
    .update(signingSecrets)
    .set(sealed)
    .where(
      and(
        eq(signingSecrets.userId, row.userId),
        eq(signingSecrets.secret, row.secret),
        row.previousSecret === null ? isNull(signingSecrets.previousSecret) : eq(signingSecrets.previousSecret, row.previousSecret),
      ),
    )
    .returning({ userId: signingSecrets.userId });
  return changed.length > 0;
}
