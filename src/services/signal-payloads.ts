import type { ValidateFunction } from "ajv";
import type { WaitTerms } from "../db/schema";
import { InvalidInput } from "../errors";
import { compileSchema, firstProblem } from "../handlers/json-schema";

/** Signal schemas compiled once per text: a burst of signals to steps of one flow definition shares one. */
const compiled = new Map<string, ValidateFunction>();

/** Refuses (400 `invalid_payload`, naming the path) a payload the signal step's `schema` does not match. */
export function checkPayload(terms: WaitTerms | null | undefined, jobRowId: string, payload: unknown, path: string) {
  const schema = terms?.schema;
  if (schema === undefined) return;
  const text = JSON.stringify(schema);
  let validate = compiled.get(text);
  if (!validate) {
    if (compiled.size >= 500) compiled.clear();
    compiled.set(text, (validate = compileSchema(schema).validate));
  }
  if (validate(payload)) return;
  const problem = firstProblem(validate.errors, path);
  throw new InvalidInput(`The payload does not match the signal step's schema (job ${jobRowId}) at ${problem.path}: ${problem.message}.`, [problem], "invalid_payload");
}
