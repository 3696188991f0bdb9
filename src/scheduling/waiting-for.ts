/**
 * Every reason flowd holds a job back, in one place (like statuses.ts for statuses): a job row's
 * `waiting_for` is one of these, or null when nothing holds it. The scheduling room answers one
 * question for every feature — may this job enter Redis (or go on) now, and if not, why — so graphs,
 * per-key limits and waits share one list, one column and the recorder's batch that releases them.
 *
 * - held out of Redis (`pending` rows): `dependencies` (graph jobs), `concurrency`, `rateLimit`,
 *   `debounce` (a single job whose debounce window is open: src/services/debounce.ts);
 * - parked while running (the row stays `active`, BullMQ holds the job without a worker slot):
 *   `children` (a join on jobs it added), `sleep`, `signal`, `approval`.
 */
export const WAITING_REASONS = ["dependencies", "concurrency", "rateLimit", "debounce", "children", "sleep", "signal", "approval"] as const;
export type WaitingReason = (typeof WAITING_REASONS)[number];

/** Reasons that keep a `pending` row out of Redis until the scheduler releases it. */
export const HELD_REASONS = ["dependencies", "concurrency", "rateLimit", "debounce"] as const satisfies readonly WaitingReason[];

/** Reasons a started job is parked for: no worker slot, woken when what it waits for happens. */
export const PARKED_REASONS = ["children", "sleep", "signal", "approval"] as const satisfies readonly WaitingReason[];

/** What a wait step (handlers/wait-steps.ts) parks for: its job row's `waiting_for` while it waits. */
export const PARKED_WAIT_REASONS = ["sleep", "signal", "approval"] as const satisfies readonly WaitingReason[];

/** A job view's `waitingFor`: why the job waits, and for what key or until when where that applies. */
export interface WaitingFor {
  reason: WaitingReason;
  key?: string;
  until?: string;
  /** `children`: the keys of the jobs a parked join waits for (src/services/spawn.ts). */
  keys?: string[];
}

const reasons: ReadonlySet<string> = new Set(WAITING_REASONS);
export const isWaitingReason = (value: string): value is WaitingReason => reasons.has(value);

/**
 * A wait with no timeout (a signal or an approval without `timeoutMs`) still has a deadline row and
 * a parked_until: this far off. Views leave such an `until` out, since nothing happens then.
 */
export const NO_DEADLINE_MS = 100 * 365 * 86_400_000;
export const shownUntil = (until: Date | null | undefined, now = Date.now()): string | undefined =>
  until && until.getTime() - now < NO_DEADLINE_MS / 2 ? until.toISOString() : undefined;
