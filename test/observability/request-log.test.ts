import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { acceptedRequestId, requestLogPlugin } from "../../src/api/plugins/request-log";
import { createLogger } from "../../src/log";
import { createMetrics } from "../../src/metrics";
import { bullTelemetry, startTelemetry, traceHeaders } from "../../src/telemetry";
import { waitFor } from "../helpers/wait";

// The plugin alone on a small app: what a request's lines say, without a database.
function app(level: "debug" | "info" = "debug") {
  const lines: Record<string, any>[] = [];
  const log = createLogger(level, { role: "test" }, (l) => lines.push(JSON.parse(l)));
  const metrics = createMetrics();
  const a = new Elysia()
    .use(requestLogPlugin({ log, metrics }))
    .get("/healthz", () => ({ status: "ok" }))
    .get("/things/:id", async ({ params }) => {
      await Bun.sleep(1);
      log.child({ component: "deep" }).info("looked a thing up", { id: params.id });
      return { id: params.id };
    });
  return { a, lines, metrics };
}

describe("the request log plugin", () => {
  test("every line a request causes carries its id, deep inside too, and the request line comes last", async () => {
    const { a, lines } = app();
    const res = await a.handle(new Request("http://localhost/things/7", { headers: { "x-request-id": "req-abc.1" } }));
    expect(res.headers.get("x-request-id")).toBe("req-abc.1");
    await waitFor(() => lines.some((l) => l.msg === "request"), 5_000, "the request line");
    expect(lines.map((l) => l.msg)).toEqual(["looked a thing up", "request"]);
    expect(lines.every((l) => l.requestId === "req-abc.1")).toBe(true);
    expect(lines[1]).toMatchObject({ method: "GET", route: "/things/:id", status: 200, role: "test" });
  });

  test("a request without a route is labelled unmatched, so random paths add no series", async () => {
    const { a, lines, metrics } = app();
    await a.handle(new Request("http://localhost/no/such/path?q=secret"));
    await waitFor(() => lines.some((l) => l.msg === "request"), 5_000, "the request line");
    expect(lines.at(-1)).toMatchObject({ route: "unmatched", path: "/no/such/path", status: 404 });
    expect(JSON.stringify(lines)).not.toContain("secret");
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/flowd_http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} 1/);
  });

  test("a health probe's success is a debug line; the request after it an info line", async () => {
    const { a, lines, metrics } = app("info");
    await a.handle(new Request("http://localhost/healthz"));
    await a.handle(new Request("http://localhost/things/1"));
    await waitFor(() => lines.some((l) => l.msg === "request"), 5_000, "the request line");
    expect(lines.filter((l) => l.msg === "request").map((l) => l.route)).toEqual(["/things/:id"]);
    // Still measured.
    expect(await metrics.registry.metrics()).toMatch(/flowd_http_request_duration_seconds_count\{method="GET",route="\/healthz",status="200"\} 1/);
  });

  test("request ids: short and plain are kept, others replaced", () => {
    expect(acceptedRequestId("4bf92f3577b34da6a3ce929d0e0e4736")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(acceptedRequestId("a".repeat(129))).toBeNull();
    expect(acceptedRequestId("has space")).toBeNull();
    expect(acceptedRequestId('quote"')).toBeNull();
    expect(acceptedRequestId("line\nbreak")).toBeNull();
    expect(acceptedRequestId("")).toBeNull();
    expect(acceptedRequestId(null)).toBeNull();
  });
});

describe("tracing off", () => {
  test("without OTEL_EXPORTER_OTLP_ENDPOINT nothing is registered: no trace headers, no BullMQ telemetry", async () => {
    const telemetry = await startTelemetry({ otelEndpoint: undefined, otelServiceName: "flowd" }, createLogger("silent"));
    expect(traceHeaders()).toEqual({});
    expect(bullTelemetry()).toBeUndefined();
    await telemetry.stop();
  });
});
