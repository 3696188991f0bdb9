import { createHash } from "node:crypto";
import { postgresCode, type DbOrTx } from "../db/client";
import { findReply, saveReply } from "../db/queries/replies";
import { Conflict } from "../errors";
import type { Logger } from "../log";

/** What a repeat must match to count as the same request. */
export const requestHash = (body: unknown) => createHash("sha256").update(JSON.stringify(body)).digest("hex");

/** A repeat with the same key but another body is a mistake worth a clear answer, not a replay. */
export function assertSameRequest(storedHash: string | null, hash: string, existingId: string) {
  if (storedHash !== hash)
    throw new Conflict(
      "idempotency_key_reused",
      "This Idempotency-Key was already used with a different request body; use a new key for a new request.",
      { id: existingId },
    );
}

/** Postgres' unique violation: two requests with one key raced, and this one lost. */
export const isUniqueViolation = (err: unknown) => postgresCode(err) === "23505";

/**
 * Keeps the first answer to a keyed create for its repeats. The resource already exists, so a
 * failure here costs only the exact replay (a repeat then sees the resource as it is now).
 */
export async function rememberReply(deps: { db: DbOrTx; log: Logger }, resourceId: string, body: unknown) {
  await saveReply(deps.db, resourceId, body).catch((err) =>
    deps.log.warn("could not store the first answer for Idempotency-Key repeats", { resourceId, err: String(err) }),
  );
}

/** The first answer to a keyed create; the resource as it is now if a repeat raced the first request. */
export async function firstReply<T>(db: DbOrTx, resourceId: string, current: () => T | Promise<T>): Promise<T> {
  return (await findReply<T>(db, resourceId)) ?? (await current());
}
