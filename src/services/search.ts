import { InvalidInput } from "../errors";
import { UNSTORABLE, findUnstorable } from "../unstorable";

/**
 * The `data=` filter of the list routes: a JSON object that a job's data must contain. Anything
 * else (bad JSON, an array, a scalar) is refused rather than matched, since `@>` on a scalar or an
 * array means something else than "has these fields". So is what a body could not hold either (a
 * NUL, an unpaired surrogate, a number past ±1.8e308): Postgres refuses the first two as jsonb, and
 * JSON.stringify would turn the last into null and search for that.
 */
export function parseDataFilter(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined || text === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidInput("'data' must be a JSON object, such as {\"customer\":42}; this is not valid JSON.", [
      { path: "/data", message: "not valid JSON" },
    ]);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new InvalidInput("'data' must be a JSON object, such as {\"customer\":42}.", [{ path: "/data", message: "not a JSON object" }]);
  const unstorable = findUnstorable(value);
  if (unstorable) {
    const path = `/data${unstorable.path}`;
    throw new InvalidInput(`The query parameter 'data' at ${path} ${UNSTORABLE[unstorable.problem]}.`, [{ path, message: UNSTORABLE[unstorable.problem] }]);
  }
  return value as Record<string, unknown>;
}

/**
 * `since` / `until` (date-time strings the route's schema already checked): items created at or
 * after `since` and before `until`. Parsed here so a value like 2026-02-30 is refused, not rolled over.
 */
export function timeRange(q: { since?: string; until?: string }): { since?: Date; until?: Date } {
  const parse = (name: "since" | "until") => {
    const text = q[name];
    if (text === undefined || text === "") return undefined;
    const at = new Date(text);
    if (Number.isNaN(at.getTime()))
      throw new InvalidInput(`'${name}' must be a date-time such as 2026-01-31T12:00:00Z.`, [{ path: `/${name}`, message: "not a date-time" }]);
    return at;
  };
  return { since: parse("since"), until: parse("until") };
}
