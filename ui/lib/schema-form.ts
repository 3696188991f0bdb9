/**
 * A run form from a version's input JSON Schema: an object's properties of simple types (string,
 * number, integer, boolean, or an enum of those) are fields; any other property is a JSON box of
 * its own; a schema that is not an object with properties (or none) is one JSON box for the whole
 * input. The server checks the input against the schema whatever the form lets through.
 */
export type Field =
  | { name: string; kind: "string" | "number" | "integer"; required: boolean; description?: string; default?: unknown }
  | { name: string; kind: "boolean"; required: boolean; description?: string; default?: unknown }
  | { name: string; kind: "enum"; options: (string | number | boolean)[]; required: boolean; description?: string; default?: unknown }
  | { name: string; kind: "json"; required: boolean; description?: string; default?: unknown };

type Schema = { type?: unknown; properties?: Record<string, Schema>; required?: unknown; enum?: unknown; description?: unknown; default?: unknown };

const SIMPLE = new Set(["string", "number", "integer", "boolean"]);

/** The fields, or null when the whole input is one JSON box. */
export function fieldsOf(schema: unknown): Field[] | null {
  const s = schema as Schema | null;
  if (!s || typeof s !== "object" || s.type !== "object" || !s.properties || typeof s.properties !== "object") return null;
  const required = new Set(Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === "string") : []);
  // Required fields first, then by name: the schema comes back from Postgres (jsonb) with its keys
  // in jsonb's order (shortest first), not the order they were written in.
  const names = Object.keys(s.properties).sort((a, b) => Number(required.has(b)) - Number(required.has(a)) || a.localeCompare(b));
  return names.map((name) => [name, s.properties![name]!] as const).map(([name, p]) => {
    const common = {
      name,
      required: required.has(name),
      ...(typeof p?.description === "string" ? { description: p.description } : {}),
      ...(p && "default" in p ? { default: p.default } : {}),
    };
    if (Array.isArray(p?.enum) && p.enum.length > 0 && p.enum.every((v) => ["string", "number", "boolean"].includes(typeof v)))
      return { ...common, kind: "enum" as const, options: p.enum as (string | number | boolean)[] };
    if (typeof p?.type === "string" && SIMPLE.has(p.type)) return { ...common, kind: p.type as "string" | "number" | "integer" | "boolean" };
    return { ...common, kind: "json" as const };
  });
}

/** What a field shows before anything is typed: its default, else empty (a boolean: false). */
export function initialValue(f: Field): string {
  if (f.default === undefined) return f.kind === "boolean" ? "false" : "";
  return f.kind === "json" ? JSON.stringify(f.default, null, 2) : String(f.default);
}

export type Built = { ok: true; input: Record<string, unknown> } | { ok: false; field: string; message: string };

/**
 * The input from the fields' text: numbers parsed, booleans as checked, JSON boxes parsed, an empty
 * optional field left out (so the schema's own rules, not an empty string, decide about it).
 */
export function buildInput(fields: Field[], values: Record<string, string>): Built {
  const input: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = values[f.name] ?? "";
    if (f.kind === "boolean") {
      input[f.name] = raw === "true";
      continue;
    }
    if (raw.trim() === "") {
      if (f.required) return { ok: false, field: f.name, message: `${f.name} is required.` };
      continue;
    }
    if (f.kind === "number" || f.kind === "integer") {
      const n = Number(raw);
      if (!Number.isFinite(n) || (f.kind === "integer" && !Number.isInteger(n)))
        return { ok: false, field: f.name, message: `${f.name} must be ${f.kind === "integer" ? "a whole number" : "a number"}.` };
      input[f.name] = n;
    } else if (f.kind === "enum") {
      input[f.name] = f.options.find((o) => String(o) === raw) ?? raw;
    } else if (f.kind === "json") {
      try {
        input[f.name] = JSON.parse(raw);
      } catch {
        return { ok: false, field: f.name, message: `${f.name} is not valid JSON.` };
      }
    } else input[f.name] = raw;
  }
  return { ok: true, input };
}
