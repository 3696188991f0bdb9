/**
 * The one small client of flowd's public REST API that the command line uses: a bearer token, JSON
 * in and out, and errors turned into the one line a person at a terminal needs. It knows nothing
 * the server exposes only to it (the routes it calls are listed in ROUTES, checked against
 * /docs/json by a test).
 */

/** Every route the command line calls, as in the OpenAPI document. */
export const ROUTES = [
  "GET /v1/flows",
  "POST /v1/flows",
  "GET /v1/flows/{id}",
  "POST /v1/flows/{id}/cancel",
  "POST /v1/flows/{id}/retry",
  "DELETE /v1/flows/{id}",
  "GET /v1/jobs",
  "GET /v1/jobs/{id}",
  "POST /v1/jobs/{id}/cancel",
  "POST /v1/jobs/{id}/retry",
  "DELETE /v1/jobs/{id}",
  "POST /v1/flows/bulk/cancel",
  "POST /v1/flows/bulk/retry",
  "POST /v1/flows/bulk/delete",
  "POST /v1/jobs/bulk/cancel",
  "POST /v1/jobs/bulk/retry",
  "POST /v1/jobs/bulk/delete",
  "GET /v1/operations",
  "GET /v1/operations/{id}",
  "POST /v1/operations/{id}/cancel",
  "POST /v1/definitions/{name}/runs",
  "GET /v1/schedules",
  "GET /v1/webhooks",
  "GET /v1/handlers",
  "GET /v1/workers",
] as const;

/** What the command line reports and exits 1 for: one line, never a stack trace. */
export class ClientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    readonly details?: { path?: string; message?: string }[],
  ) {
    super(message);
  }
}

export const LOGIN_HINT = "run `flowd login --url URL --token TOKEN` (or set FLOWD_URL and FLOWD_TOKEN)";

export interface Api {
  url: string;
  token: string;
  request<T = any>(method: string, path: string, body?: unknown): Promise<T>;
}

export function createApi(url: string, token: string, opts: { timeoutMs?: number } = {}): Api {
  const base = url.replace(/\/+$/, "");
  return {
    url: base,
    token,
    async request(method, path, body) {
      let res: Response;
      try {
        res = await fetch(base + path, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 90_000),
        });
      } catch (err) {
        throw new ClientError(`cannot reach ${base} (${reason(err)})`);
      }
      const text = await res.text();
      let parsed: any = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = text;
      }
      if (res.ok) return parsed;
      const error = parsed?.error;
      if (res.status === 401)
        throw new ClientError(`the server at ${base} refused the token (401): ${LOGIN_HINT}`, 401, "unauthorized");
      if (error?.message) throw new ClientError(error.message, res.status, error.code, Array.isArray(error.details) ? error.details : undefined);
      throw new ClientError(`${method} ${path} answered ${res.status} ${res.statusText}`, res.status);
    },
  };
}

function reason(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string };
  if (e?.name === "TimeoutError") return "timed out";
  if (e?.code === "ConnectionRefused" || /refused/i.test(e?.message ?? "")) return "connection refused";
  return e?.code ?? e?.message ?? String(err);
}

/** The socket URL of an API base URL. */
export const socketUrl = (base: string) => base.replace(/^http/, "ws") + "/v1/ws";
