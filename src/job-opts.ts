/**
 * A job's options as flowd stores them (the `opts` column of both job tables) and hands them to
 * BullMQ: the API's schema admits exactly these, so every layer reads one shape.
 */
export interface JobOpts {
  attempts?: number;
  backoff?: { type: "fixed" | "exponential"; delay: number };
  delay?: number;
  priority?: number;
  failParentOnFailure?: boolean;
  ignoreDependencyOnFailure?: boolean;
  continueParentOnFailure?: boolean;
  removeDependencyOnFailure?: boolean;
  // Timeouts, expiry and debounce (README "Job options"): flowd's own, never handed to BullMQ as its options.
  /** Ends a running attempt after this many ms (a failed attempt, retried per attempts/backoff). */
  timeoutMs?: number;
  /** A job not started within this many ms of becoming ready fails with code `expired`. */
  expireAfterMs?: number;
  /** Single jobs only: creates with the same key within `ms` of the last collapse into one run. */
  debounce?: { key: string; ms: number };
  // Per-key limits (src/scheduling/limits.ts): flowd holds the job out of Redis until they allow it.
  concurrency?: ConcurrencyLimit | ConcurrencyLimit[];
  rateLimit?: RateLimit;
}

/** At most `limit` jobs with this key run at once, across every worker. */
export interface ConcurrencyLimit {
  key: string;
  limit: number;
}

/** At most `max` jobs with this key start per `perMs`, spread evenly. */
export interface RateLimit {
  key: string;
  max: number;
  perMs: number;
}

export const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;
export const MAX_EXPIRE_AFTER_MS = 7 * 24 * 60 * 60 * 1000;
export const MIN_DEBOUNCE_MS = 10;
export const MAX_DEBOUNCE_MS = 60 * 60 * 1000;
export const MAX_DEBOUNCE_KEY_CHARS = 128;

/** The most jobs of one key that may run at once. */
export const MAX_LIMIT = 1_000;
/** The most starts a rate limit may allow per period. */
export const MAX_RATE = 100_000;
/** The most concurrency keys one job may name. */
export const MAX_CONCURRENCY_KEYS = 3;
export const MAX_LIMIT_KEY_LENGTH = 128;
/** A rate limit's period: at most a day. */
export const MAX_RATE_PER_MS = 24 * 60 * 60 * 1000;

/**
 * What a handler module may declare for every job of a handler (README "Handler modules"). The
 * create-time ones are stored with the handler's registration and merged into a new job's opts by
 * the API; `timeoutMs` is applied by the worker when the attempt runs.
 */
export type HandlerDefaults = Pick<JobOpts, "concurrency" | "rateLimit" | "expireAfterMs">;

/** The fields of HandlerDefaults, in the order they are checked and merged. */
export const DEFAULTED_FIELDS = ["concurrency", "rateLimit", "expireAfterMs"] as const;

/** A new job's opts with a handler's defaults under them: a field the job sets wins whole. */
export function withHandlerDefaults(defaults: HandlerDefaults | null | undefined, opts: JobOpts | undefined): JobOpts {
  if (!defaults) return opts ?? {};
  const out: JobOpts = { ...opts };
  for (const field of DEFAULTED_FIELDS) if (out[field] === undefined && defaults[field] !== undefined) (out as Record<string, unknown>)[field] = defaults[field];
  return out;
}
