import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropDatabase } from "../helpers/db";
import { REPO, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { PG_BASE, REDIS_URL } from "../helpers/services";
import { launchBrowser, type Browser } from "../ui/browser";
import { testPort } from "../helpers/ports";

/**
 * /docs from the compiled binary alone in an empty folder: the API reference UI comes from inside
 * it, and renders the routes in headless Chromium with no request leaving loopback.
 * FLOWD_BIN points at a binary built beforehand (CI); otherwise this file builds one.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-docs-"));
const bin = join(dir, "flowd");
const dbName = `flowd_docs_${process.pid}_${Date.now().toString(36)}`;
const prefix = uniquePrefix("docs");
const port = testPort();
const base = `http://127.0.0.1:${port}`;
let api: FlowdProcess | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  let source = process.env.FLOWD_BIN;
  if (!source) {
    const out = mkdtempSync(join(tmpdir(), "flowd-docs-build-"));
    const build = Bun.spawnSync(
      ["bun", "build", "--compile", "--compile-autoload-package-json", "--minify-syntax", "--minify-whitespace", "--keep-names", "src/cli.ts", "--outfile", join(out, "flowd")],
      { cwd: REPO, stdout: "pipe", stderr: "pipe" },
    );
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
    source = join(out, "flowd");
  }
  copyFileSync(source, bin);
  Bun.spawnSync(["chmod", "+x", bin]);
  expect(readdirSync(dir)).toEqual(["flowd"]);
  api = spawnFlowd(["--role=api"], { DATABASE_URL: `${PG_BASE}/${dbName}`, REDIS_URL, FLOWD_PREFIX: prefix, PORT: String(port), LOG_LEVEL: "info" }, { bin, cwd: dir });
  await api.waitForLine(/"flowd ready"/);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await api?.stop("SIGKILL");
  await deletePrefix(prefix);
  await dropDatabase(dbName);
  rmSync(dir, { recursive: true, force: true });
});

describe("/docs from the compiled binary", () => {
  test("the page and its pinned script come from the binary, with no outside URL", async () => {
    const html = await (await fetch(`${base}/docs`)).text();
    expect(html).not.toMatch(/https?:\/\//);
    const script = await fetch(`${base}/docs/assets/api-reference.js`);
    expect(script.status).toBe(200);
    const bundled = Bun.file(join(REPO, "node_modules/@scalar/api-reference/dist/browser/standalone.js"));
    expect((await script.arrayBuffer()).byteLength).toBe(bundled.size);
    const doc = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, Record<string, { operationId?: string }>> };
    expect(doc.paths["/v1/flows"]?.post?.operationId).toBe("createFlow");
  });

  test("renders in headless Chromium with the routes listed, nothing leaving loopback", async () => {
    browser = await launchBrowser();
    const page = await browser.newPage();
    await page.goto(`${base}/docs`);
    await page.getByText("Create a flow", { exact: false }).first().waitFor({ timeout: 20_000 });
    const text = await page.evaluate<string>("document.body.innerText");
    // The first tag's operations are listed; the others are groups (collapsed until opened).
    for (const route of ["/v1/flows", "/v1/flows/{id}", "/v1/flows/{id}/cancel", "/v1/flows/{id}/retry"]) expect(text).toContain(route);
    for (const tag of ["jobs", "schedules", "webhooks", "events", "handlers", "health"]) expect(text).toContain(tag);
    expect(browser.outside).toEqual([]);
    expect(browser.problems).toEqual([]);
    // Under its own policy (the only one with 'unsafe-eval') the reference UI breaks no rule.
    expect(browser.violations).toEqual([]);
  }, 60_000);
});
