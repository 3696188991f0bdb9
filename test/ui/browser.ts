import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

/** Debian's Chromium (`apt-get install chromium`; .ci/run installs it when missing). */
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Nothing but loopback resolves: a page that reached for an outside URL would fail loudly.
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
];

export interface Browser {
  context: BrowserContext;
  /** Requests that left loopback (there should be none), console errors and page errors, per page. */
  outside: string[];
  problems: string[];
  /** Content-Security-Policy violations any page reported (`securitypolicyviolation` events). */
  violations: string[];
  newPage(width?: number, height?: number): Promise<Page>;
  close(): Promise<void>;
}

const LOOPBACK = /^(https?|wss?):\/\/(127\.0\.0\.1|localhost)(:\d+)?\//;

/** A fresh Chromium profile in a temporary folder, removed on close. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get update && apt-get install -y chromium (or set CHROMIUM_BIN)`);
  const profile = mkdtempSync(join(tmpdir(), "flowd-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
  });
  const outside: string[] = [];
  const problems: string[] = [];
  const violations: string[] = [];
  // Every document reports its policy violations to the test, whatever the console says about them.
  await context.exposeBinding("__flowdCspViolation", ({ page }, text: string) => void violations.push(`on ${page.url()}: ${text}`));
  await context.addInitScript({
    content: `document.addEventListener("securitypolicyviolation", (e) =>
      __flowdCspViolation(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " (" + e.sourceFile + ":" + e.lineNumber + ")"));`,
  });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (LOOPBACK.test(url) || url.startsWith("data:")) return route.continue();
    outside.push(url);
    return route.abort();
  });
  const watch = (page: Page) => {
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console error on ${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  };
  for (const p of context.pages()) watch(p);
  context.on("page", watch);
  return {
    context,
    outside,
    problems,
    violations,
    async newPage(width = 1280, height = 900) {
      const page = await context.newPage();
      await page.setViewportSize({ width, height });
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
