import { createRateLimiter } from "./rate-limit";

/**
 * The HTTP limit's token bucket, for one socket's client messages: `perSecond` on average, bursts
 * of twice that. `perSecond` 0 turns it off. Returns whether a message may pass.
 */
export function messageBucket(perSecond: number, now: () => number = Date.now): () => boolean {
  if (perSecond <= 0) return () => true;
  const take = createRateLimiter(perSecond, now);
  return () => take("socket") === 0;
}

/**
 * Open sockets per user on this process. `admits` answers the upgrade early (a 429 before the
 * handshake); `open` is the authority, since several upgrades of one user may pass `admits` at once.
 */
export function socketCounter(perUser: number) {
  const open = new Map<string, number>();
  return {
    perUser,
    admits: (userId: string) => (open.get(userId) ?? 0) < perUser,
    open(userId: string): boolean {
      const n = open.get(userId) ?? 0;
      if (n >= perUser) return false;
      open.set(userId, n + 1);
      return true;
    },
    release(userId: string) {
      const n = (open.get(userId) ?? 1) - 1;
      if (n <= 0) open.delete(userId);
      else open.set(userId, n);
    },
  };
}
