import { gunzipSync } from "bun";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  service: string;
  attributes: Record<string, unknown>;
}

/** An OTLP/HTTP receiver on loopback: POST /v1/traces with the JSON protocol, spans kept in order. */
export function startOtlpReceiver() {
  const spans: ReceivedSpan[] = [];
  const refused: string[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const type = req.headers.get("content-type") ?? "";
      if (req.method !== "POST" || path !== "/v1/traces" || !type.includes("json")) {
        refused.push(`${req.method} ${path} ${type}`);
        return new Response("unsupported", { status: 415 });
      }
      const raw = new Uint8Array(await req.arrayBuffer());
      const text = new TextDecoder().decode(req.headers.get("content-encoding") === "gzip" ? gunzipSync(raw) : raw);
      const body = JSON.parse(text) as { resourceSpans?: any[] };
      for (const rs of body.resourceSpans ?? []) {
        const service = rs.resource?.attributes?.find((a: any) => a.key === "service.name")?.value?.stringValue ?? "";
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              name: s.name,
              kind: s.kind,
              service,
              attributes: Object.fromEntries((s.attributes ?? []).map((a: any) => [a.key, Object.values(a.value ?? {})[0]])),
            });
      }
      return Response.json({ partialSuccess: {} });
    },
  });
  return { spans, refused, url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}
