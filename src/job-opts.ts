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
}
