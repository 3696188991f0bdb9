import { Type } from "@sinclair/typebox";
import { safeFetch } from "../net/safe-fetch";
import { traceHeaders } from "../telemetry";
import { defineHandler } from "./types";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] as const;

/**
 * Calls a URL through the SSRF-guarded fetch. When the job has children, their results travel in the
 * request: the body becomes `{ "body": <body>, "children": { <jobId>: <result> } }` (methods with a body).
 */
export const http = defineHandler({
  data: Type.Object(
    {
      url: Type.String({ pattern: "^https?://", maxLength: 4096 }),
      method: Type.Optional(Type.Union(METHODS.map((m) => Type.Literal(m)))),
      headers: Type.Optional(Type.Record(Type.String(), Type.String())),
      body: Type.Optional(Type.Unknown()),
      timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 300_000 })),
    },
    { additionalProperties: false },
  ),
  run: async ({ data, children, signal, config }) => {
    const method = data.method ?? (data.body === undefined && Object.keys(children).length === 0 ? "GET" : "POST");
    const hasChildren = Object.keys(children).length > 0;
    const payload = hasChildren ? { body: data.body, children } : data.body;
    const sendsBody = method !== "GET" && method !== "HEAD" && payload !== undefined;
    // The job's trace goes along (W3C traceparent) when tracing is on; a header the job sets wins.
    const headers = { ...(sendsBody ? { "content-type": "application/json" } : {}), ...traceHeaders(), ...data.headers };
    const res = await safeFetch(
      data.url,
      { method, headers, body: sendsBody ? (typeof payload === "string" ? payload : JSON.stringify(payload)) : undefined },
      { allowPrivate: config.allowPrivateUrls, timeoutMs: data.timeoutMs ?? 30_000, signal },
    );
    let body: unknown = res.body;
    if (res.headers.get("content-type")?.includes("json")) {
      try {
        body = JSON.parse(res.body);
      } catch {
        // Keep the text: a server that mislabels its body should not fail the job for it.
      }
    }
    if (res.status < 200 || res.status >= 300) throw new Error(`${method} ${data.url} answered ${res.status}`);
    return { status: res.status, body };
  },
});
