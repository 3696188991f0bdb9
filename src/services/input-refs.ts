/**
 * `$input` references in a definition's job data: an object that is exactly `{ "$input": "<JSON
 * Pointer>" }` (RFC 6901) stands for the value the pointer selects in the run's input, whatever its
 * type. Only whole values are replaced: a string such as "id ${/customer/id}" is kept as it is (no
 * interpolation), so a value keeps its JSON type and no text needs escaping.
 */
import { refusal } from "./flow-spec";

export type InputRef = { pointer: string; path: string };

/** A key as a JSON Pointer token. */
const token = (k: string) => k.replace(/~/g, "~0").replace(/\//g, "~1");

const isRef = (v: unknown): v is { $input: unknown } =>
  v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "$input" in v;

/** Splits a pointer into its tokens ("" is the whole input); undefined when it is not a JSON Pointer. */
export function pointerTokens(pointer: string): string[] | undefined {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) return undefined;
  const raw = pointer.slice(1).split("/");
  if (raw.some((t) => /~[^01]|~$/.test(t))) return undefined;
  return raw.map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** Every reference below `value`, each with where it sits (`path`); a malformed one is a 400 naming it. */
export function findRefs(value: unknown, path: string, out: InputRef[] = []): InputRef[] {
  if (isRef(value)) {
    const pointer = value.$input;
    if (typeof pointer !== "string" || pointerTokens(pointer) === undefined)
      throw refusal(
        "invalid_input",
        `${path}/$input`,
        `At ${path}/$input: an input reference is a JSON Pointer such as "/customer/id" (or "" for the whole input); got ${JSON.stringify(pointer)}.`,
      );
    out.push({ pointer, path });
  } else if (Array.isArray(value)) value.forEach((v, i) => findRefs(v, `${path}/${i}`, out));
  else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) findRefs(v, `${path}/${token(k)}`, out);
  return out;
}

export const hasRefs = (value: unknown): boolean => findRefs(value, "").length > 0;

const MISSING = Symbol("missing");

function select(input: unknown, tokens: string[]): unknown {
  let at: unknown = input;
  for (const t of tokens) {
    if (Array.isArray(at)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t) || Number(t) >= at.length) return MISSING;
      at = at[Number(t)];
    } else if (at !== null && typeof at === "object" && Object.hasOwn(at, t)) at = (at as Record<string, unknown>)[t];
    else return MISSING;
  }
  return at;
}

/** `value` with every reference replaced by what it points at in `input`; a pointer to nothing is 400 `invalid_input` naming it. */
export function resolveRefs(value: unknown, input: unknown, path: string): unknown {
  if (isRef(value)) {
    const pointer = value.$input as string;
    const found = select(input, pointerTokens(pointer) ?? []);
    if (found === MISSING)
      throw refusal("invalid_input", `/input${pointer}`, `The input has nothing at ${pointer === "" ? "/" : pointer}, which ${path} takes its value from.`);
    return found;
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveRefs(v, input, `${path}/${i}`));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveRefs(v, input, `${path}/${token(k)}`);
    return out;
  }
  return value;
}

/**
 * Whether the input schema lets anything sit at `pointer`: it follows `properties` (and `items`)
 * down, and refuses a token an object schema closes off with `additionalProperties: false`. Schemas
 * it cannot follow (combinators, `$ref`) allow the pointer; the run checks it against the input.
 */
export function schemaAllows(schema: unknown, pointer: string): boolean {
  let at: unknown = schema;
  for (const t of pointerTokens(pointer) ?? []) {
    if (at === true || at === undefined || at === null || typeof at !== "object") return at !== false;
    const s = at as Record<string, unknown>;
    if (s.type === "array" || s.items !== undefined) {
      at = typeof s.items === "object" ? s.items : true;
      continue;
    }
    const props = (s.properties ?? {}) as Record<string, unknown>;
    if (Object.hasOwn(props, t)) at = props[t];
    else if (s.additionalProperties === false) return false;
    else at = typeof s.additionalProperties === "object" ? s.additionalProperties : true;
  }
  return at !== false;
}
