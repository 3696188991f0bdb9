import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CONTENT_SECURITY_POLICY, DOCS_CONTENT_SECURITY_POLICY } from "../../src/api/plugins/security-headers";
import { startStack, type Stack } from "../helpers/stack";

// Through the real listener, not app.handle: /docs is a static route, which Bun may answer natively,
// so only a real request proves the headers reach it.

const APP_ORIGIN = "https://app.example";
let plain: Stack;
let withCors: Stack;

beforeAll(async () => {
  plain = await startStack({ workers: 0, tag: "sech" });
  withCors = await startStack({ workers: 0, tag: "secc", env: { FLOWD_CORS_ORIGINS: `${APP_ORIGIN},http://localhost:5173` } });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([plain?.stop(), withCors?.stop()]);
});

const corsHeaders = (headers: Headers) => [...headers.keys()].filter((k) => k.startsWith("access-control-"));

function expectSecurityHeaders(headers: Headers, policy = CONTENT_SECURITY_POLICY) {
  expect(headers.get("x-content-type-options")).toBe("nosniff");
  expect(headers.get("referrer-policy")).toBe("no-referrer");
  expect(headers.get("x-frame-options")).toBe("DENY");
  expect(headers.get("content-security-policy")).toBe(policy);
}

describe("security headers", () => {
  test("the /docs page has them, with a policy that still lets Scalar load", async () => {
    const res = await fetch(`${plain.baseUrl}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    expectSecurityHeaders(res.headers, DOCS_CONTENT_SECURITY_POLICY);
    const csp = res.headers.get("content-security-policy")!;
    // Scalar evaluates code for schema examples: /docs alone is allowed to.
    expect(csp).toContain("script-src 'self' 'unsafe-eval'");
    expect(csp).toContain("frame-ancestors 'none'");
    // Every script the page loads is allowed by script-src.
    const scriptSrc = csp.split("; ").find((d) => d.startsWith("script-src "))!.split(" ");
    const scripts = [...html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => new URL(m[1]!, plain.baseUrl).origin);
    expect(scripts.length).toBeGreaterThan(0);
    for (const origin of scripts) expect(scriptSrc).toContain(origin === plain.baseUrl ? "'self'" : origin);
    expect(corsHeaders(res.headers)).toEqual([]);
  });

  test("JSON responses have nosniff: the OpenAPI document, a /v1 route, an error", async () => {
    const doc = await fetch(`${plain.baseUrl}/docs/json`);
    expect(doc.status).toBe(200);
    expectSecurityHeaders(doc.headers);
    const list = await plain.http("GET", "/v1/flows");
    expect(list.status).toBe(200);
    expect(list.headers.get("content-type")).toContain("application/json");
    expect(list.headers.get("x-content-type-options")).toBe("nosniff");
    const unauthorized = await plain.http("GET", "/v1/flows", undefined, { token: null });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("x-content-type-options")).toBe("nosniff");
    const missing = await plain.http("GET", "/no/such/route");
    expect(missing.status).toBe(404);
    expectSecurityHeaders(missing.headers);
  });

  test("'unsafe-eval' is allowed on /docs only: the dashboard, its assets, the API and errors get the strict policy", async () => {
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe-eval");
    // Otherwise the two policies are the same directive for directive.
    expect(DOCS_CONTENT_SECURITY_POLICY.replace(" 'unsafe-eval'", "")).toBe(CONTENT_SECURITY_POLICY);
    const ui = await fetch(`${plain.baseUrl}/ui`);
    expect(ui.status).toBe(200);
    const assets = [...(await ui.text()).matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    const others = [ui, ...(await Promise.all(assets.map((a) => fetch(plain.baseUrl + a))))];
    others.push(await fetch(`${plain.baseUrl}/docs/json`), await fetch(`${plain.baseUrl}/v1/flows`), await fetch(`${plain.baseUrl}/no/such/route`));
    others.push(await fetch(`${plain.baseUrl}/docsx`));
    // /docs/ is the same page as /docs, with its policy.
    expect((await fetch(`${plain.baseUrl}/docs/`)).headers.get("content-security-policy")).toBe(DOCS_CONTENT_SECURITY_POLICY);
    for (const res of others) {
      if (!res.bodyUsed) await res.arrayBuffer();
      expect({ url: res.url, csp: res.headers.get("content-security-policy") }).toEqual({ url: res.url, csp: CONTENT_SECURITY_POLICY });
    }
  });
});

describe("CORS", () => {
  test("off by default: no Access-Control-* header, even for an Origin or a preflight", async () => {
    const res = await plain.http("GET", "/v1/flows", undefined, { headers: { origin: APP_ORIGIN } });
    expect(res.status).toBe(200);
    expect(corsHeaders(res.headers)).toEqual([]);
    const preflight = await fetch(`${plain.baseUrl}/v1/flows`, {
      method: "OPTIONS",
      headers: { origin: APP_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(corsHeaders(preflight.headers)).toEqual([]);
    expect(preflight.headers.get("vary")).toBeNull();
  });

  test("a preflight from a listed origin is answered without authentication", async () => {
    const res = await fetch(`${withCors.baseUrl}/v1/flows`, {
      method: "OPTIONS",
      headers: { origin: APP_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, idempotency-key" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowedHeaders = res.headers.get("access-control-allow-headers")!.split(/,\s*/);
    for (const h of ["authorization", "content-type", "idempotency-key"]) expect(allowedHeaders).toContain(h);
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    expect(res.headers.get("vary")).toContain("Origin");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  test("a request from a listed origin gets the allow header; other listed origins are told apart", async () => {
    const res = await withCors.http("GET", "/v1/flows", undefined, { headers: { origin: APP_ORIGIN } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP_ORIGIN);
    expect(res.headers.get("access-control-expose-headers")).toContain("retry-after");
    expect(res.headers.get("vary")).toContain("Origin");
    const other = await withCors.http("GET", "/healthz", undefined, { headers: { origin: "http://localhost:5173" } });
    expect(other.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
  });

  test("an unlisted origin gets no allow header, on a preflight or a request", async () => {
    for (const origin of ["https://evil.example", "https://app.example.evil.example", "http://app.example", "https://APP.example", "null"]) {
      const preflight = await fetch(`${withCors.baseUrl}/v1/flows`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST" },
      });
      expect(preflight.status).not.toBe(204);
      expect(corsHeaders(preflight.headers)).toEqual([]);
      const res = await withCors.http("GET", "/v1/flows", undefined, { headers: { origin } });
      expect(res.status).toBe(200);
      expect(corsHeaders(res.headers)).toEqual([]);
      expect(res.headers.get("vary")).toContain("Origin");
    }
  });
});
