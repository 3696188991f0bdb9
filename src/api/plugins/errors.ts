import { Elysia } from "elysia";
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { AppError } from "../../errors";
import type { Logger } from "../../log";
import { nonJsonBodyType } from "./body";
import { postgresCode } from "../../db/client";

const body = (code: string, message: string, details?: unknown) => ({
  error: details === undefined ? { code, message } : { code, message, details },
});

/**
 * Errors meaning the database cannot serve us right now, not that the query was wrong: the
 * connection is gone or refused, the server is shutting down or starting, or it has no connection
 * slot left (53300, when other clients hold them all) — a retry shortly can succeed.
 */
const UNAVAILABLE = new Set([
  "ECONNREFUSED", "ECONNRESET", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT",
  "57P01", "57P02", "57P03", "53300", "08000", "08001", "08003", "08004", "08006",
]);
export function isPostgresDown(err: unknown): boolean {
  return UNAVAILABLE.has(postgresCode(err) ?? "");
}

interface Schema {
  anyOf?: Schema[];
  const?: unknown;
  type?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
}
type SchemaError = { path: string; summary?: string; message: string; schema?: Schema; value?: unknown };

/**
 * A union of shapes (an object or a list of them, an object or null) that the value failed: TypeBox
 * only says it is none of them. The error of the one variant of the value's own kind names the
 * field that is wrong (`/opts/concurrency/limit`, not `/opts/concurrency`).
 */
function withinUnion(e: SchemaError): SchemaError | null {
  const kind = Array.isArray(e.value) ? "array" : e.value === null ? "null" : typeof e.value;
  const variants = (e.schema?.anyOf ?? []).filter((v) => v.type === kind);
  if (variants.length !== 1 || (kind !== "object" && kind !== "array")) return null;
  const first = Value.Errors(variants[0] as TSchema, e.value).First();
  if (!first) return null;
  return { path: `${e.path}${first.path}`, message: first.message, schema: first.schema as Schema, value: first.value };
}

/**
 * Says what a value must be, from the schema, where TypeBox's own words are vague: a query's
 * enum or number arrives as a union ("should be one of: 'string', 'string'").
 */
function explain(e: SchemaError): string {
  // A flow's or graph's job has no `debounce` in its schema: say why rather than "should not be provided".
  if (e.path.endsWith("/opts/debounce") && e.path !== "/opts/debounce")
    return "debounce applies only to a single job created by POST /v1/jobs (not to a flow's jobs, a bulk or a schedule)";
  const options = e.schema?.anyOf ?? [];
  const allowed = options.filter((o) => o.const !== undefined).map((o) => String(o.const));
  if (allowed.length > 0 && allowed.length === options.length) return `must be one of ${allowed.join(", ")}`;
  // A query number (models/query.ts) is a string whose format holds the bounds, stated beside it.
  const bounds = [e.schema, ...options].find(
    (s) => (s?.type === "integer" || s?.type === "number" || s?.format?.startsWith("flowd-")) && (s.minimum !== undefined || s.maximum !== undefined),
  );
  if (bounds) {
    const integer = bounds.type === "integer" || bounds.format?.startsWith("flowd-integer") || options.some((o) => o.type === "integer");
    return `must be ${integer ? "an integer" : "a number"} ${range(bounds.minimum, bounds.maximum)}`;
  }
  return e.summary ?? e.message;
}

const range = (min?: number, max?: number) =>
  min !== undefined && max !== undefined ? `from ${min} to ${max}` : min !== undefined ? `of at least ${min}` : `of at most ${max}`;

/**
 * Postgres refused a value the request carried (SQLSTATE class 22: bad text encoding, bad JSON,
 * number out of range, string too long). Input checks should catch these first; this keeps a
 * missed one a 400 instead of a 500.
 */
const isDataException = (err: unknown) => /^22[0-9A-Z]{3}$/.test(postgresCode(err) ?? "");

/** Renders every failure in SPEC's error shape; no stack trace ever reaches a client. */
export const errorPlugin = (log: Logger) =>
  new Elysia({ name: "errors" }).onError({ as: "global" }, ({ code, error, set, request }) => {
    set.headers["content-type"] = "application/json";
    // Elysia wraps whatever a parse hook throws; the body plugin's refusals are inside.
    const domain = error instanceof AppError ? error : (error as { cause?: unknown })?.cause;
    if (domain instanceof AppError) {
      set.status = domain.status;
      if ("headers" in domain) Object.assign(set.headers, domain.headers);
      return body(domain.code, domain.message, domain.details);
    }
    switch (code) {
      case "PARSE":
        set.status = 400;
        return body("invalid_json", "The request body is not valid JSON; send a JSON object with 'content-type: application/json'.");
      case "VALIDATION": {
        set.status = 400;
        const sent = nonJsonBodyType(request);
        if (sent)
          return body(
            "unsupported_content_type",
            `Send the body as JSON with 'content-type: application/json' (this request said '${sent}').`,
          );
        const all = ((error as unknown as { all: SchemaError[] }).all ?? []).map((e) => withinUnion(e) ?? e);
        const details = all.slice(0, 20).map((e) => ({ path: e.path || "/", message: explain(e) }));
        const first = details[0];
        return body("invalid_input", first ? `Invalid input at ${first.path}: ${first.message}.` : "Invalid input.", details);
      }
      case "NOT_FOUND":
        set.status = 404;
        return body("route_not_found", `No route ${request.method} ${new URL(request.url).pathname}; see /docs for the API.`);
    }
    if (isPostgresDown(error)) {
      set.status = 503;
      return body("postgres_unavailable", "Postgres is unavailable; retry shortly.");
    }
    const path = new URL(request.url).pathname;
    if (isDataException(error)) {
      // The logger drops the query's parameters: they are the user's data.
      log.warn("a value reached Postgres unchecked and was refused", { err: error, path });
      set.status = 400;
      return body("invalid_input", "A value in the request cannot be stored (Postgres refused it); check strings and numbers for unusual characters or sizes.");
    }
    log.error("unhandled error", { err: error, path });
    set.status = 500;
    return body("internal_error", "Something went wrong on the server; the error was logged.");
  });
