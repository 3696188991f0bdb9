import { Elysia } from "elysia";
// The API reference UI, pinned in package.json and embedded in the compiled binary: /docs works
// without internet and shows the same UI whatever the CDN serves today. The standalone bundle is
// one self-contained script (no chunks, no fonts fetched when `withDefaultFonts` is off).
// @ts-expect-error -- a file import (Bun gives its path, inside the binary once compiled); the bundle has no types.
import scalarBundle from "../../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with { type: "file" };
import { buildDocument } from "../openapi-document";
import { DOCS_CONTENT_SECURITY_POLICY } from "./security-headers";

export const DOCS_SCRIPT_PATH = "/docs/assets/api-reference.js";

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The page loads nothing from elsewhere: its one script is ours, the configuration is a data block
 * (not an inline script, which the CSP forbids), and fonts are the browser's own.
 */
function page(title: string, description: string): string {
  const configuration = JSON.stringify({ withDefaultFonts: false, telemetry: false, hideClientButton: false });
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(title)}</title>
    <meta name="description" content="${escapeHtml(description)}" />
  </head>
  <body>
    <script id="api-reference" type="application/json" data-url="/docs/json" data-configuration="${escapeHtml(configuration)}"></script>
    <script src="${DOCS_SCRIPT_PATH}"></script>
  </body>
</html>`;
}

export interface DocsInfo {
  title: string;
  version: string;
  description: string;
  license?: { name: string; identifier?: string; url?: string };
}

/**
 * GET /docs (the reference UI), GET /docs/json (the OpenAPI document, built on first request once
 * every route is registered, rebuilt only if routes were added since) and the UI's script.
 */
export function docsPlugin(base: { info: DocsInfo } & Record<string, unknown>) {
  const plugin = new Elysia({ name: "docs" });
  let cached: { routes: number; doc: unknown } | null = null;
  const html = page(base.info.title, base.info.description);
  const routeCount = () => (plugin as unknown as { getGlobalRoutes(): unknown[] }).getGlobalRoutes().length;
  return plugin
    .get("/docs", () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": DOCS_CONTENT_SECURITY_POLICY } }), {
      detail: { hide: true },
    })
    .get(
      DOCS_SCRIPT_PATH,
      () =>
        new Response(Bun.file(scalarBundle as string), {
          headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=86400" },
        }),
      { detail: { hide: true } },
    )
    .get(
      "/docs/json",
      () => {
        const routes = routeCount();
        if (cached?.routes !== routes) cached = { routes, doc: buildDocument(plugin as never, base) };
        return cached.doc;
      },
      { detail: { hide: true } },
    );
}
