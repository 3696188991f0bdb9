import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config";

describe("tracing settings", () => {
  test("unset: no endpoint, service name flowd", () => {
    const config = loadConfig({});
    expect(config.otelEndpoint).toBeUndefined();
    expect(config.otelServiceName).toBe("flowd");
  });

  test("an OTLP/HTTP base URL and a service name are taken", () => {
    const config = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SERVICE_NAME: "flowd-eu" });
    expect(config.otelEndpoint).toBe("http://collector:4318");
    expect(config.otelServiceName).toBe("flowd-eu");
  });

  test("a malformed endpoint is refused by name", () => {
    let error: unknown;
    try {
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain("OTEL_EXPORTER_OTLP_ENDPOINT");
  });
});
