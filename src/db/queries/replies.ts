import { eq } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { idempotentReplies } from "../schema";

export async function saveReply(db: DbOrTx, resourceId: string, body: unknown) {
  await db.insert(idempotentReplies).values({ resourceId, body }).onConflictDoNothing();
}

/** Replaces a stored first answer (a bulk create stores one with its rows, then the final one). */
export async function replaceReply(db: DbOrTx, resourceId: string, body: unknown) {
  await db.update(idempotentReplies).set({ body }).where(eq(idempotentReplies.resourceId, resourceId));
}

export async function findReply<T>(db: DbOrTx, resourceId: string): Promise<T | undefined> {
  const [row] = await db.select({ body: idempotentReplies.body }).from(idempotentReplies).where(eq(idempotentReplies.resourceId, resourceId)).limit(1);
  return row?.body as T | undefined;
}

export async function deleteReply(db: DbOrTx, resourceId: string) {
  await db.delete(idempotentReplies).where(eq(idempotentReplies.resourceId, resourceId));
}
