import { RateLimited } from "../errors";
import type { Authenticate } from "../services/tokens";

/**
 * A token bucket per user: `perSecond` requests a second on average, bursts of twice that. Kept per
 * API process, in memory: cheap, and a runaway client is slowed wherever it lands.
 */
export function createRateLimiter(perSecond: number, now: () => number = Date.now) {
  const capacity = perSecond * 2;
  const buckets = new Map<string, { tokens: number; at: number }>();
  /** Takes one request's token; returns 0, or the whole seconds to wait when the bucket is empty. */
  return function take(key: string): number {
    const t = now();
    const bucket = buckets.get(key) ?? { tokens: capacity, at: t };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
    bucket.at = t;
    buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
  };
}

/** Authentication that also counts the request against its user's limit (0 turns the limit off). */
export function rateLimited(authenticate: Authenticate, perSecond: number): Authenticate {
  if (perSecond <= 0) return authenticate;
  const take = createRateLimiter(perSecond);
  return async (token) => {
    const user = await authenticate(token);
    if (!user) return user;
    const wait = take(user.userId);
    if (wait > 0) throw new RateLimited(wait, perSecond);
    return user;
  };
}
