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
