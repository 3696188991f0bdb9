import { InvalidInput } from "../errors";

/**
 * The `data=` filter of the list routes: a JSON object that a job's data must contain. Anything
 * else (bad JSON, an array, a scalar) is refused rather than matched, since `@>` on a scalar or an
 * array means something else than "has these fields".
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
  return value as Record<string, unknown>;
}
