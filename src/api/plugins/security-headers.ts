import { Elysia } from "elysia";

/**
 * The policy of every response: the dashboard (/ui) runs its own bundled scripts and styles from this
 * origin and talks to this origin's API and socket; it evaluates no strings as code, so no
 * 'unsafe-eval'. Images and workers from data:/blob: URLs are for charts and the docs bundle.
 */
const DIRECTIVES = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
];

export const CONTENT_SECURITY_POLICY = DIRECTIVES.join("; ");

/**
 * The /docs page's policy: the same, plus 'unsafe-eval' in script-src, because the API reference UI
 * (Scalar, whose pinned bundle the binary serves from /docs/assets, loading nothing from another
 * origin) evaluates code for schema examples. Only that page gets it: its Response carries this
 * header, which wins over the default.
 */
export const DOCS_CONTENT_SECURITY_POLICY = DIRECTIVES.map((d) => (d === "script-src 'self'" ? "script-src 'self' 'unsafe-eval'" : d)).join("; ");

/**
 * Set on every response, so that no route, static page or error path can miss them (which content
 * type a static route answers is not visible to a hook). The policy only acts where a browser renders
 * a document; a route whose Response carries its own content-security-policy keeps it (Elysia lets a
 * Response's headers win).
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

// What a browser client of the API sends and may read; credentials are bearer tokens, never cookies.
const CORS_METHODS = "GET, POST, DELETE";
const CORS_REQUEST_HEADERS = "authorization, content-type, idempotency-key, x-request-id";
const CORS_EXPOSED_HEADERS = "retry-after, idempotent-replayed, x-request-id";

/**
 * Security headers on every response, and CORS for exactly the `corsOrigins` (FLOWD_CORS_ORIGINS):
 * with none configured no Access-Control-* header is ever sent; an unlisted origin is answered as if
 * CORS were off. Register it before the other plugins: hooks apply to what comes after them.
 */
export const securityHeadersPlugin = (corsOrigins: readonly string[]) => {
  const allowed = new Set(corsOrigins);
  return new Elysia({ name: "security-headers" }).onRequest(({ request, set }) => {
    Object.assign(set.headers, SECURITY_HEADERS);
    if (allowed.size === 0) return;
    // The answer depends on Origin once CORS is on: caches must keep one per origin.
    set.headers.vary = "Origin";
    const origin = request.headers.get("origin");
    if (origin === null || !allowed.has(origin)) return;
    set.headers["access-control-allow-origin"] = origin;
    if (request.method === "OPTIONS" && request.headers.has("access-control-request-method")) {
      return new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-methods": CORS_METHODS,
          "access-control-allow-headers": CORS_REQUEST_HEADERS,
          "access-control-max-age": "600",
        },
      });
    }
    set.headers["access-control-expose-headers"] = CORS_EXPOSED_HEADERS;
  });
};
