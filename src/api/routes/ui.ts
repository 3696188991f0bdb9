import { Elysia } from "elysia";
import { basename } from "node:path";
import page from "../../../ui/index.html";

/**
 * GET /ui: the dashboard, from assets inside the binary. `bun build --compile` bundles the HTML
 * import and embeds its files (`page.files`); from a checkout (`bun src/cli.ts`, tests) the same
 * entry is bundled in memory on first request. Either way the files are served here under
 * /ui/assets/, since Elysia hands an HTML import to Bun's static routes only for an app without
 * request hooks, and this one has them (security headers, CORS). The page talks to the server
 * through the public API and socket alone.
 */
interface Asset {
  body: Uint8Array;
  type: string;
}
interface UiBundle {
  index: Asset;
  assets: Map<string, Asset>;
}

type Bundled = { index: string; files?: { path: string; loader: string; headers: Record<string, string> }[] };

const ASSET_PREFIX = "/ui/assets/";

/** The HTML refers to its files by root paths (`/chunk-x.js`); point those at /ui/assets/. */
function relink(htmlText: string, names: string[]): string {
  let out = htmlText;
  for (const name of names) out = out.replaceAll(`"/${name}"`, `"${ASSET_PREFIX}${name}"`).replaceAll(`"./${name}"`, `"${ASSET_PREFIX}${name}"`);
  return out;
}

async function fromBinary(b: Bundled): Promise<UiBundle> {
  const files = b.files!;
  const assets = new Map<string, Asset>();
  let html = "";
  for (const f of files) {
    const file = Bun.file(f.path);
    if (f.loader === "html") html = await file.text();
    else assets.set(basename(f.path), { body: new Uint8Array(await file.arrayBuffer()), type: f.headers["content-type"] ?? file.type });
  }
  return { index: { body: new TextEncoder().encode(relink(html, [...assets.keys()])), type: "text/html;charset=utf-8" }, assets };
}

async function fromSource(entry: string): Promise<UiBundle> {
  const built = await Bun.build({ entrypoints: [entry], minify: true, target: "browser" });
  if (!built.success) throw new Error(`the dashboard did not build: ${built.logs.map(String).join("; ")}`);
  const assets = new Map<string, Asset>();
  let html = "";
  for (const out of built.outputs) {
    if (out.path.endsWith(".html")) html = await out.text();
    else assets.set(basename(out.path), { body: new Uint8Array(await out.arrayBuffer()), type: out.type });
  }
  return { index: { body: new TextEncoder().encode(relink(html, [...assets.keys()])), type: "text/html;charset=utf-8" }, assets };
}

let loading: Promise<UiBundle> | null = null;
const bundle = () => {
  const b = page as unknown as Bundled;
  loading ??= b.files ? fromBinary(b) : fromSource(b.index);
  // A failed build is not kept: the next request tries again.
  loading.catch(() => (loading = null));
  return loading;
};

const send = (a: Asset, cache: string) =>
  new Response(a.body, { headers: { "content-type": a.type, "cache-control": cache } });

export const uiRoutes = () =>
  new Elysia({ detail: { hide: true } })
    .get("/ui", async () => send((await bundle()).index, "no-cache"))
    .get("/ui/assets/:name", async ({ params, status }) => {
      const a = (await bundle()).assets.get(params.name);
      // Asset names carry a content hash, so a browser may keep them.
      return a ? send(a, "public, max-age=31536000, immutable") : status(404, { error: { code: "route_not_found", message: "No such dashboard file." } });
    });
