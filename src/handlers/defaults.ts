/**
 * A handler's defaults for its jobs' opts (`concurrency`, `rateLimit`, `expireAfterMs`), checked
 * when its module is loaded by the bounds the API holds a job's own opts to, so a default can never
 * put on a job what the job could not have asked for itself. Keys are fixed strings: every job of
 * the handler shares them (a key per tenant is set on the job's own opts).
 */
import {
  MAX_CONCURRENCY_KEYS,
  MAX_EXPIRE_AFTER_MS,
  MAX_LIMIT,
  MAX_LIMIT_KEY_LENGTH,
  MAX_RATE,
  MAX_RATE_PER_MS,
  type ConcurrencyLimit,
  type HandlerDefaults,
  type RateLimit,
} from "../job-opts";

/** Thrown with the field's path ("concurrency.limit"); the loader names the file and handler. */
export class DefaultsProblem extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const got = (v: unknown) => (v === undefined ? "nothing" : (JSON.stringify(v) ?? typeof v).slice(0, 80));

function wholeNumber(value: unknown, field: string, max: number): number {
  if (!(Number.isInteger(value) && (value as number) >= 1 && (value as number) <= max))
    throw new DefaultsProblem(`${field} must be a whole number between 1 and ${max}; got ${got(value)}`);
  return value as number;
}

function limitKey(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length < 1 || value.length > MAX_LIMIT_KEY_LENGTH)
    throw new DefaultsProblem(`${field} must be a string of 1 to ${MAX_LIMIT_KEY_LENGTH} characters; got ${got(value)}`);
  return value;
}

function onlyFields(value: Record<string, unknown>, field: string, allowed: string[]) {
  const extra = Object.keys(value).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw new DefaultsProblem(`${field} has an unknown field '${extra}' (allowed: ${allowed.join(", ")})`);
}

function concurrencyLimit(value: unknown, field: string): ConcurrencyLimit {
  if (!isObject(value)) throw new DefaultsProblem(`${field} must be an object { key, limit }; got ${got(value)}`);
  onlyFields(value, field, ["key", "limit"]);
  return { key: limitKey(value.key, `${field}.key`), limit: wholeNumber(value.limit, `${field}.limit`, MAX_LIMIT) };
}

function concurrency(value: unknown): ConcurrencyLimit | ConcurrencyLimit[] {
  if (!Array.isArray(value)) return concurrencyLimit(value, "concurrency");
  if (value.length < 1 || value.length > MAX_CONCURRENCY_KEYS)
    throw new DefaultsProblem(`concurrency must name 1 to ${MAX_CONCURRENCY_KEYS} keys; got ${value.length}`);
  const limits = value.map((v, i) => concurrencyLimit(v, `concurrency[${i}]`));
  const twice = limits.findIndex((c, i) => limits.findIndex((d) => d.key === c.key) !== i);
  if (twice >= 0) throw new DefaultsProblem(`concurrency[${twice}].key '${limits[twice]!.key}' is named twice; name each key once`);
  return limits;
}

function rateLimit(value: unknown): RateLimit {
  if (!isObject(value)) throw new DefaultsProblem(`rateLimit must be an object { key, max, perMs }; got ${got(value)}`);
  onlyFields(value, "rateLimit", ["key", "max", "perMs"]);
  return {
    key: limitKey(value.key, "rateLimit.key"),
    max: wholeNumber(value.max, "rateLimit.max", MAX_RATE),
    perMs: wholeNumber(value.perMs, "rateLimit.perMs", MAX_RATE_PER_MS),
  };
}

/** A handler spec's create-time defaults, checked; null when it declares none. Throws DefaultsProblem. */
export function checkDefaults(spec: { concurrency?: unknown; rateLimit?: unknown; expireAfterMs?: unknown }): HandlerDefaults | null {
  const out: HandlerDefaults = {};
  if (spec.concurrency !== undefined) out.concurrency = concurrency(spec.concurrency);
  if (spec.rateLimit !== undefined) out.rateLimit = rateLimit(spec.rateLimit);
  if (spec.expireAfterMs !== undefined) out.expireAfterMs = wholeNumber(spec.expireAfterMs, "expireAfterMs", MAX_EXPIRE_AFTER_MS);
  return Object.keys(out).length > 0 ? out : null;
}
