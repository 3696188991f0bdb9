/**
 * Per-key limits: what a job's `opts.concurrency` and `opts.rateLimit` mean for the scheduler.
 *
 * A limited job is written `pending` and held out of Redis (`waiting_for` = `concurrency` or
 * `rateLimit`, see waiting-for.ts) until a release pass (limit-release.ts) finds room for it under
 * every key it names; then it loses its hold and goes into Redis like any job. Slots are never
 * counted up and down: a key's running jobs are its released, unfinished rows, so a worker killed
 * while holding slots leaks nothing — BullMQ retries the stalled job, which keeps its slot, and its
 * end frees it.
 */
import type { ConcurrencyLimit, JobOpts, RateLimit } from "../job-opts";
import type { KeySettings } from "../db/queries/limits";
import type { WaitingReason } from "./waiting-for";

export type { KeySettings };

// The bounds live with JobOpts, so a handler module's defaults are checked by the same numbers.
export { MAX_CONCURRENCY_KEYS, MAX_LIMIT, MAX_LIMIT_KEY_LENGTH, MAX_RATE } from "../job-opts";

/** A job's limits, read from its opts (both forms of `concurrency` become a list). */
export interface JobLimits {
  concurrency: ConcurrencyLimit[];
  rate: RateLimit | null;
}

export function jobLimits(opts: JobOpts | Record<string, unknown> | null | undefined): JobLimits | null {
  const o = (opts ?? {}) as JobOpts;
  const concurrency = o.concurrency === undefined ? [] : Array.isArray(o.concurrency) ? o.concurrency : [o.concurrency];
  const rate = o.rateLimit ?? null;
  return concurrency.length === 0 && !rate ? null : { concurrency, rate };
}

/** The columns a job row carries for its limits, and the hold it is first written with. */
export function limitFields(opts: JobOpts | Record<string, unknown>): {
  concurrencyKeys: string[] | null;
  rateKey: string | null;
  waitingFor: WaitingReason | null;
} {
  const limits = jobLimits(opts);
  if (!limits) return { concurrencyKeys: null, rateKey: null, waitingFor: null };
  return {
    concurrencyKeys: limits.concurrency.length > 0 ? limits.concurrency.map((c) => c.key) : null,
    rateKey: limits.rate?.key ?? null,
    waitingFor: limits.concurrency.length > 0 ? "concurrency" : "rateLimit",
  };
}

/** Checks what the schema cannot: a key named twice. Returns a problem (path, message) or null. */
export function limitProblem(opts: JobOpts | undefined): { path: string; message: string } | null {
  const limits = jobLimits(opts);
  if (!limits) return null;
  const seen = new Set<string>();
  for (const [i, c] of limits.concurrency.entries()) {
    if (seen.has(c.key))
      return { path: `/opts/concurrency/${i}/key`, message: `the concurrency key '${c.key}' is named twice; name each key once` };
    seen.add(c.key);
  }
  return null;
}

/** BullMQ is never told about limits: flowd applies them before the job reaches Redis. */
export function withoutLimits<T extends JobOpts>(opts: T): Omit<T, "concurrency" | "rateLimit"> {
  const { concurrency: _c, rateLimit: _r, ...rest } = opts;
  return rest;
}

/**
 * The key settings a create's jobs carry, one per key, by the one rule limits are stored by: each of
 * a key's two settings — its concurrency limit, and its rate limit (`max` and `perMs` together) — is
 * set by the first job that names the key with that setting, in the order the jobs are given, and
 * only while the key has none stored (ensureLimitKeys keeps what is there). So a create of many jobs
 * stores what creating them one by one would, whatever endpoint it came through (a single job, a
 * bulk, a graph or tree flow, a spawn, a schedule's tick); `PUT /v1/limits/:key` is the only way to
 * change a stored setting.
 */
export function keySettingsOf(opts: Iterable<JobOpts | Record<string, unknown> | null | undefined>): KeySettings[] {
  const byKey = new Map<string, KeySettings>();
  const of = (key: string) => {
    let k = byKey.get(key);
    if (!k) byKey.set(key, (k = { key, concurrency: null, rateMax: null, ratePerMs: null }));
    return k;
  };
  for (const o of opts) {
    const limits = jobLimits(o);
    if (!limits) continue;
    for (const c of limits.concurrency) {
      const k = of(c.key);
      k.concurrency ??= c.limit;
    }
    if (limits.rate) {
      const k = of(limits.rate.key);
      if (k.rateMax === null) {
        k.rateMax = limits.rate.max;
        k.ratePerMs = limits.rate.perMs;
      }
    }
  }
  return [...byKey.values()];
}
