import { t } from "elysia";

/**
 * Every `error.code` the HTTP API answers with, for clients to switch on. Validation keeps the field
 * a plain string (a code added elsewhere must never turn an error into a 500); the OpenAPI document
 * shows this list as its enum, and test/api/openapi.test.ts holds the domain errors to it.
 */
export const ERROR_CODES = [
  // 400
  "invalid_input",
  "invalid_json",
  "unsupported_content_type",
  "invalid_cursor",
  "invalid_url",
  "invalid_events",
  "invalid_schedule",
  "invalid_job_data",
  "unknown_handler",
  "unknown_queue",
  "flow_too_deep",
  "too_many_jobs",
  "invalid_join",
  "bulk_too_large",
  "empty_filter",
  "invalid_payload",
  // 401, 403, 404
  "not_an_approver",
  "unauthorized",
  "not_found",
  "route_not_found",
  // 409
  "flow_finished",
  "flow_running",
  "job_finished",
  "job_running",
  "nothing_to_retry",
  "callback_expired",
  "operation_finished",
  "idempotency_key_reused",
  "not_a_graph",
  "attempt_ended",
  "definition_from_module",
  "not_waiting",
  "already_decided",
  // 410, 413, 429, 431
  "events_expired",
  "callback_used",
  "payload_too_large",
  "rate_limited",
  "headers_too_large",
  // 500, 503
  "internal_error",
  "postgres_unavailable",
  "overloaded",
  "not_ready",
] as const;

export const ErrorSchema = t.Object(
  {
    error: t.Object({
      code: t.String({ enum: [...ERROR_CODES], description: "snake_case, stable: switch on this" }),
      message: t.String({ description: "a human sentence" }),
      details: t.Optional(t.Unknown()),
    }),
  },
  { $id: "Error" },
);

/** What each error status means, for the document's response descriptions. */
export const ERROR_MEANINGS = {
  400: "Invalid input (the details say where)",
  401: "No or bad API token",
  403: "Not permitted: an approval step's decision by a user it does not name (not_an_approver)",
  404: "No such resource for this user",
  409: "The resource's state does not allow this",
  410: "Gone: the events after this seq were removed by retention (events_expired), or the callback was used already (callback_used)",
  413: "The body is too large",
  429: "Too many requests (per user, or per address for callbacks); Retry-After says when to try again",
  503: "Postgres or Redis unavailable, or the API overloaded (a create found no room within FLOWD_ADMISSION_WAIT_MS); Retry-After when it says so",
} as const;
type ErrorStatus = keyof typeof ERROR_MEANINGS;

/**
 * The error responses of an authenticated route, one definition for every route module: 400, 401,
 * 429 and 503 always, plus the statuses given (404 for routes on an id, 409 for state changes, 413
 * for bodies, 410 for the event log).
 */
export function errorResponses<const S extends ErrorStatus>(...extra: S[]) {
  const statuses: ErrorStatus[] = [400, 401, 429, 503, ...extra];
  return Object.fromEntries(statuses.map((s) => [s, ErrorSchema])) as Record<400 | 401 | 429 | 503 | S, typeof ErrorSchema>;
}

/** The error responses of a route that needs no token (callbacks): exactly the statuses given. */
export function publicErrorResponses<const S extends ErrorStatus>(...statuses: S[]) {
  return Object.fromEntries(statuses.map((s) => [s, ErrorSchema])) as Record<S, typeof ErrorSchema>;
}
