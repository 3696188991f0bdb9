import { Type } from "@sinclair/typebox";
import { safeFetch } from "../net/safe-fetch";
import { traceHeaders } from "../telemetry";
import { defineHandler, PermanentFailure } from "./types";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] as const;
const HOUR_MS = 3_600_000;
export const DEFAULT_CALLBACK_TIMEOUT_MS = HOUR_MS;
/** The longest `Retry-After` honoured: a service asking for days is asking for a retry by hand. */
export const MAX_RETRY_AFTER_MS = HOUR_MS;

/** The service answered 202: the attempt waits for its callback (see workers/http-task.ts). */
export class Parked {
  constructor(
    readonly callbackTimeoutMs: number,
    readonly heartbeatTimeoutMs: number | null,
  ) {}
}

/** A 429 or 503 with `Retry-After`: the attempt failed, and the next must not come sooner. */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly afterMs: number,
  ) {
    super(message);
    this.name = "RetryLater";
  }
}

/**
 * Calls a URL through the SSRF-guarded fetch, signed (Standard Webhooks) with the user's signing
 * secret. When the job has children, their results travel in the request: the body becomes
 * `{ "body": <body>, "children": { <jobId>: <result> } }` (methods with a body); a graph job's
 * dependencies' results come both there and keyed by key in `"parents": { <key>: <result> }`. The answer decides
 * the attempt the way task queues do: 2xx completes, 202 parks until the callback, a 4xx a retry
 * cannot fix fails for good, and `Retry-After` holds the next attempt back.
 */
export const http = defineHandler({
  data: Type.Object(
    {
      url: Type.String({ pattern: "^https?://", maxLength: 4096 }),
      method: Type.Optional(Type.Union(METHODS.map((m) => Type.Literal(m)))),
      headers: Type.Optional(Type.Record(Type.String(), Type.String())),
      body: Type.Optional(Type.Unknown()),
      timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 900_000, description: "ceiling of one request (default 30 s, at most 15 min)" })),
      callbackTimeoutMs: Type.Optional(
        Type.Integer({ minimum: 1000, maximum: 7 * 24 * HOUR_MS, description: "after a 202, how long the job waits for its callback (default 1 h, at most 7 days)" }),
      ),
      heartbeatTimeoutMs: Type.Optional(
        Type.Integer({ minimum: 1000, maximum: 7 * 24 * HOUR_MS, description: "after a 202, the attempt fails when no callback or heartbeat comes for this long" }),
      ),
    },
    { additionalProperties: false },
  ),
  run: async ({ data, children, parents, signal, config, task }) => {
    const method = data.method ?? (data.body === undefined && Object.keys(children).length === 0 ? "GET" : "POST");
    const hasChildren = Object.keys(children).length > 0;
    const payload = hasChildren ? { body: data.body, children, ...(parents ? { parents } : {}) } : data.body;
    const sendsBody = method !== "GET" && method !== "HEAD" && payload !== undefined;
    const text = sendsBody ? (typeof payload === "string" ? payload : JSON.stringify(payload)) : undefined;
    // The job's trace goes along (W3C traceparent) when tracing is on. flowd's signature and
    // identity headers come last: a header the job sets may not forge them.
    const headers = {
      ...(sendsBody ? { "content-type": "application/json" } : {}),
      ...traceHeaders(),
      ...data.headers,
      ...task?.headers(text ?? ""),
    };
    const res = await safeFetch(data.url, { method, headers, body: text }, { allowPrivate: config.allowPrivateUrls, timeoutMs: data.timeoutMs ?? 30_000, signal });
    if (res.status === 202 && task) return new Parked(data.callbackTimeoutMs ?? DEFAULT_CALLBACK_TIMEOUT_MS, data.heartbeatTimeoutMs ?? null);
    if (res.status >= 200 && res.status < 300) return { status: res.status, body: parseBody(res.body, res.headers) };
    throw answerError(`${method} ${data.url} answered ${res.status}`, res.status, res.headers.get("retry-after"));
  },
});

/** What a non-2xx answer means for the job: 4xx is final except 408, 409 and 429; Retry-After is honoured. */
export function answerError(message: string, status: number, retryAfter: string | null, now = Date.now()): Error {
  if ((status === 429 || status === 503) && retryAfter !== null) {
    const ms = parseRetryAfter(retryAfter, now);
    if (ms !== null) return new RetryLater(`${message}; Retry-After ${retryAfter}`, Math.min(ms, MAX_RETRY_AFTER_MS));
  }
  if (status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 429)
    return new PermanentFailure(`${message} (a 4xx is not retried: fix the request or the service)`);
  return new Error(message);
}

/** `Retry-After` as delta-seconds or an HTTP date, in ms from `now`; null when it is neither. */
export function parseRetryAfter(value: string, now = Date.now()): number | null {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function parseBody(text: string, headers: Headers): unknown {
  if (!headers.get("content-type")?.includes("json")) return text;
  try {
    return JSON.parse(text);
  } catch {
    // Keep the text: a server that mislabels its body should not fail the job for it.
    return text;
  }
}
