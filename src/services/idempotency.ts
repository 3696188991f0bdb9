import { createHash } from "node:crypto";
import { Conflict } from "../errors";
import { postgresCode } from "../db/client";

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
