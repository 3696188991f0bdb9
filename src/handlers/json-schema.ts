import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

/**
 * Data schemas of handler modules and of the registry are arbitrary JSON Schema (a TypeBox schema
 * is one), so they go through Ajv rather than TypeBox's own checker. `format` is not checked: Ajv
 * knows no formats without a plugin, and refusing a schema for naming one would be worse.
 */
const newAjv = () => new Ajv({ strict: false, allErrors: false, validateFormats: false, addUsedSchema: false });

/** Compiles a schema once; throws (with Ajv's reason) when it is not a valid JSON Schema. */
export function compileSchema(raw: unknown): { schema: Record<string, unknown> | boolean; validate: ValidateFunction } {
  if (typeof raw !== "boolean" && (raw === null || typeof raw !== "object" || Array.isArray(raw)))
    throw new Error("a JSON Schema is an object (or true/false)");
  // A round trip through JSON drops TypeBox's symbol keys and anything that could not be stored.
  const schema = JSON.parse(JSON.stringify(raw)) as Record<string, unknown> | boolean;
  const validate = newAjv().compile(schema);
  return { schema, validate };
}

/** The first problem as a JSON pointer below `base` and a sentence. */
export function firstProblem(errors: ErrorObject[] | null | undefined, base: string): { path: string; message: string } {
  const e = errors?.[0];
  if (!e) return { path: base, message: "does not match the handler's data schema" };
  const missing = e.keyword === "required" ? `/${(e.params as { missingProperty: string }).missingProperty}` : "";
  return { path: `${base}${e.instancePath}${missing}`, message: e.message ?? "does not match" };
}
