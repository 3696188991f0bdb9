/**
 * What flowd reads about BullMQ's per-queue event streams (XINFO STREAM), and the rule that tells a
 * reader whether entries it had not read yet were trimmed away.
 */
import { bullKey } from "../queues";

export interface StreamInfo {
  length: number;
  lastGeneratedId: string;
  /** Entries ever added (Redis 7+; undefined on 6.2). */
  entriesAdded?: number;
}

export const eventStreamKey = (prefix: string, queue: string) => bullKey(prefix, queue, "events");

/** ioredis's flat XINFO STREAM reply as an object; null for a reply that is not one. */
export function parseStreamInfo(reply: unknown): StreamInfo | null {
  if (!Array.isArray(reply)) return null;
  const field = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) field.set(String(reply[i]), reply[i + 1]);
  return {
    length: Number(field.get("length") ?? 0),
    lastGeneratedId: String(field.get("last-generated-id") ?? "0-0"),
    entriesAdded: field.has("entries-added") ? Number(field.get("entries-added")) : undefined,
  };
}

/** Orders stream ids (`ms-seq`, or `0`) numerically; BigInt because ms * 2^64 + seq has no double. */
export function compareStreamIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return d > 0n ? 1 : d < 0n ? -1 : 0;
}

/**
 * Tells a reader of one stream whether entries after its cursor were deleted before it read them.
 * Trimming removes the oldest entries first, so while the cursor's own entry is still there nothing
 * after it is gone. Once it is gone, the reader compares how many entries were ever removed
 * (entries added minus length) with its cursor's ordinal (how many entries were added up to it),
 * which it learns whenever a read reaches the end of the stream. Without an ordinal (just took
 * over, or Redis 6.2 without `entries-added`) a vanished cursor counts as a gap: converging when
 * nothing was lost costs time, never correctness.
 */
export function createGapCheck() {
  const ordinals = new Map<string, number>();
  return {
    /** A snapshot read in one MULTI with `cursorExists` (XRANGE cursor cursor); null info: no stream. */
    lost(key: string, cursor: string, info: StreamInfo, cursorExists: boolean): boolean {
      if (cursor === "0" || cursor === "0-0") return info.entriesAdded !== undefined && info.entriesAdded > info.length;
      if (cursorExists) return false;
      const ordinal = ordinals.get(key);
      if (ordinal === undefined || info.entriesAdded === undefined) return true;
      return info.entriesAdded - info.length > ordinal;
    },
    /** After reading `n` entries of the snapshot (`complete`: all there were after the cursor). */
    read(key: string, n: number, info: StreamInfo, complete: boolean) {
      const ordinal = ordinals.get(key);
      if (complete && info.entriesAdded !== undefined) ordinals.set(key, info.entriesAdded);
      else if (ordinal !== undefined) ordinals.set(key, ordinal + n);
    },
    /** After converging up to the snapshot's newest entry. */
    converged(key: string, info: StreamInfo | null) {
      if (info?.entriesAdded !== undefined) ordinals.set(key, info.entriesAdded);
      else ordinals.delete(key);
    },
    forget: () => ordinals.clear(),
  };
}
