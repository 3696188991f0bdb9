import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import axe from "axe-core";
import type { Page } from "playwright-core";
import { createToken } from "../../src/services/tokens";
import { spawnFlowd } from "../helpers/process";
import { httpClient } from "../helpers/http";
import { waitFor } from "../helpers/wait";
import type { Browser } from "./browser";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * The dashboard in Chromium against the compiled binary, copied alone into an empty folder (its
 * assets come from inside it). FLOWD_BIN points at a binary built beforehand; otherwise this file
 * builds one. Screenshots go to FLOWD_UI_SHOTS (default: a temporary folder, printed).
 */
const shots = process.env.FLOWD_UI_SHOTS ?? join(tmpdir(), "flowd-ui-shots");
mkdirSync(shots, { recursive: true });
let stack: BinaryStack;
let dir: string;
let bin: string;
let base: string;
let db: BinaryStack["db"];
let browser: Browser;
let alice: string;
let bob: string;
let asAlice: ReturnType<typeof httpClient>;

beforeAll(async () => {
  stack = await startBinaryStack("ui");
  ({ dir, bin, base, db, browser } = stack);
  expect(readdirSync(dir)).toEqual(["flowd"]);
  alice = (await createToken(db.database.db, "alice")).token;
  bob = (await createToken(db.database.db, "bob")).token;
  asAlice = httpClient(base, alice);
  console.log(`screenshots in ${shots}`);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const created = async (path: string, body: unknown, token = alice) => {
  const res = await httpClient(base, token)("POST", path, body);
  if (res.status !== 201) throw new Error(`${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
};

/** A page already signed in (the token typed into the form, as a person would). */
async function signedIn(width = 1280, height = 900): Promise<Page> {
  const page = await browser.newPage(width, height);
  await page.goto(`${base}/ui`);
  await page.getByLabel("API token").fill(alice);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#h-overview").waitFor({ timeout: 10_000 });
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

describe("the dashboard", () => {
  test("is served from the binary alone, with no outside URL", async () => {
    const res = await fetch(`${base}/ui`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('<div id="app">');
    const assets = [...text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => !u.startsWith("data:"));
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const a of assets) {
      expect(a.startsWith("/ui/assets/")).toBe(true);
      const asset = await fetch(base + a);
      expect(asset.status).toBe(200);
      expect(await asset.text()).not.toMatch(/https?:\/\/(?!127\.0\.0\.1|localhost|www\.w3\.org)[a-z0-9.-]+\.[a-z]{2,}\/[^\s"']*\.(js|css|woff2?)/i);
    }
  });

  test("sign-in: a wrong token says so; the right one shows the overview, live; sign-out forgets it", async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/ui`);
    await shot(page, "signin");
    await page.getByLabel("API token").fill("flowd_not_a_real_token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("not valid");
    await shot(page, "signin-wrong");
    await page.getByLabel("API token").fill(alice);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#h-overview").waitFor();
    await page.locator('[data-connection="live"]').waitFor({ timeout: 10_000 });
    expect(await page.evaluate('sessionStorage.getItem("flowd.token")')).toBe(alice);
    // Never in a URL the page opened over HTTP.
    expect(page.url()).not.toContain(alice);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    expect(await page.evaluate('sessionStorage.getItem("flowd.token")')).toBeNull();
    await page.close();
  });

  test("the flows page lists only the user's flows; search by name and data", async () => {
    const mine = [await created("/v1/flows", { name: "alpha-1", root: { name: "echo", data: { customer: 1 } } })];
    mine.push(await created("/v1/flows", { name: "alpha-2", root: { name: "echo", data: { customer: 2 } } }));
    const theirs = await created("/v1/flows", { name: "alpha-bob", root: { name: "echo", data: { customer: 1 } } }, bob);
    const page = await signedIn();
    await page.goto(`${base}/ui#/flows?name=alpha`);
    await page.locator(`tr[data-flow="${mine[0]}"]`).waitFor();
    const ids = await page.locator("tr[data-flow]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-flow")));
    expect(ids).toEqual([mine[1], mine[0]]);
    expect(ids).not.toContain(theirs);
    await page.getByLabel("Data contains (JSON)").fill('{"customer": 1}');
    await page.getByRole("button", { name: "Search" }).click();
    await waitFor(async () => (await page.locator("tr[data-flow]").count()) === 1, 10_000, "one row for customer 1");
    expect(await page.locator("tr[data-flow]").getAttribute("data-flow")).toBe(mine[0]!);
    await page.getByLabel("Data contains (JSON)").fill("[1]");
    await page.getByRole("button", { name: "Search" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("JSON object");
    await page.close();
  });

  test("a flow's page goes from running to completed without reload, over the socket alone", async () => {
    const id = await created("/v1/flows", {
      name: "live-one",
      root: { name: "echo", children: [{ name: "sleep", data: { ms: 2500 } }, { name: "echo", children: [{ name: "sleep", data: { ms: 1500 } }] }] },
    });
    const page = await signedIn();
    await page.goto(`${base}/ui#/flows/${id}`);
    await page.locator('[data-flow-status="running"]').waitFor({ timeout: 10_000 });
    await page.locator(".graph .node").first().waitFor();
    expect(await page.locator(".graph .node").count()).toBe(4);
    await shot(page, "flow-running");
    const requests: string[] = [];
    page.on("request", (r) => {
      if (r.resourceType() !== "websocket") requests.push(`${r.method()} ${r.url()}`);
    });
    let navigations = 0;
    page.on("framenavigated", (f) => f === page.mainFrame() && navigations++);
    await page.evaluate("window.marker = 42");
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await page.locator('.graph .node[data-status="completed"]').count()) === 4, 10_000, "every node completed");
    expect(await page.evaluate("window.marker")).toBe(42);
    expect(navigations).toBe(0);
    expect(requests).toEqual([]);
    await page.locator(".graph .node").first().focus();
    await page.keyboard.press("Enter");
    await page.locator("[data-job-panel]").waitFor();
    await shot(page, "flow-completed");
    await page.close();
  });

  test("a graph flow's page shows every job and every dependency, and goes to completed live", async () => {
    const id = await created("/v1/flows", {
      name: "diamond",
      jobs: [
        { key: "A", name: "sleep", data: { ms: 1500 } },
        { key: "B", name: "echo", dependsOn: ["A"] },
        { key: "C", name: "echo", dependsOn: ["A"] },
        { key: "D", name: "echo", dependsOn: ["B", "C"] },
      ],
    });
    const page = await signedIn();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${base}/ui#/flows/${id}`);
    await page.locator('[data-flow-status="running"]').waitFor({ timeout: 10_000 });
    await page.locator(".graph .node").first().waitFor();
    expect(await page.locator(".graph .node").count()).toBe(4);
    expect(await page.locator(".graph .edges polyline").count()).toBe(4);
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await page.locator('.graph .node[data-status="completed"]').count()) === 4, 10_000, "every node completed");
    await shot(page, "graph-flow-completed");
    expect(errors).toEqual([]);
    await page.close();
  });

  test("retry from the page completes a failed flow", async () => {
    const id = await created("/v1/flows", { name: "flaky", root: { name: "echo", children: [{ name: "fail", data: { message: "boom", times: 1 } }] } });
    await waitFor(async () => (await asAlice("GET", `/v1/flows/${id}`)).body.status === "failed", 20_000, "the flow to fail");
    const page = await signedIn();
    await page.goto(`${base}/ui#/flows/${id}`);
    await page.locator('[data-flow-status="failed"]').waitFor({ timeout: 10_000 });
    await page.locator('.graph .node[data-status="failed"]').last().click();
    await page.locator("[data-job-panel] .stack").waitFor();
    await shot(page, "flow-failed");
    // By keyboard: the dialog opens on Enter with focus inside, Escape closes it, Tab reaches the action.
    await page.getByRole("button", { name: "Retry", exact: true }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("dialog").waitFor();
    await shot(page, "flow-retry-confirm");
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.getByRole("button", { name: "Retry", exact: true }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("dialog").waitFor();
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Not now");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Retry flow");
    await page.keyboard.press("Enter");
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    expect((await asAlice("GET", `/v1/flows/${id}`)).body.status).toBe("completed");
    await page.close();
  });

  test("another user's flow id reads as not found, exactly like a missing one", async () => {
    const theirs = await created("/v1/flows", { name: "bobs", root: { name: "echo" } }, bob);
    const page = await signedIn();
    const texts: string[] = [];
    for (const id of [theirs, "c0000000000000000000000000"]) {
      await page.goto(`${base}/ui#/flows/${id}`);
      await page.getByRole("heading", { name: "Flow not found" }).waitFor();
      texts.push((await page.locator("main").textContent())!.replace(id, "<id>"));
    }
    expect(texts[0]).toBe(texts[1]!);
    await page.close();
  });

  test("a malformed escape in the address (#/flows/%) shows a not-found page, and the dashboard keeps working", async () => {
    const page = await signedIn();
    const before = browser.problems.length;
    for (const hash of ["#/flows/%", "#/jobs/%E0%A4%A"]) {
      await page.goto(`${base}/ui${hash}`);
      await page.getByRole("heading", { name: "Page not found" }).waitFor({ timeout: 10_000 });
      expect(await page.locator("main").textContent()).toContain(hash.slice(1));
    }
    await shot(page, "malformed-address");
    await page.getByRole("link", { name: "Go to the overview" }).click();
    await page.locator("#h-overview").waitFor({ timeout: 10_000 });
    await page.locator('[data-connection="live"]').waitFor({ timeout: 10_000 });
    expect(browser.problems.slice(before)).toEqual([]);
    await page.close();
  });

  test("runs under a policy without 'unsafe-eval': no CSP violation, and eval really is refused", async () => {
    const res = await fetch(`${base}/ui`);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-eval");
    const page = await signedIn();
    await page.locator('[data-connection="live"]').waitFor({ timeout: 10_000 });
    await page.goto(`${base}/ui#/flows`);
    await page.locator("#h-flows").waitFor({ timeout: 10_000 });
    expect(browser.violations).toEqual([]);
    // The watch sees a violation when one happens: a string handed to setTimeout is eval.
    const mark = browser.problems.length;
    await page.evaluate(`setTimeout("window.evaluated = true", 0)`);
    await waitFor(() => browser.violations.length > 0, 5_000, "the violation reported");
    expect(browser.violations[0]).toContain("script-src");
    expect(await page.evaluate("window.evaluated === true")).toBe(false);
    // That one was on purpose: Chromium's console error for it is not a problem of the dashboard.
    browser.violations.length = 0;
    browser.problems.splice(mark);
    await page.close();
  });

  test("schedules and webhooks: the API's validation messages, create, delete with confirmation", async () => {
    const page = await signedIn();
    await page.goto(`${base}/ui#/schedules`);
    await page.getByLabel("Name", { exact: true }).fill("ui-made");
    await page.getByRole("textbox", { name: "Cron pattern" }).fill("not a cron");
    await page.getByRole("button", { name: "Create schedule" }).click();
    await expect(page.locator(".form [role=alert]").textContent()).resolves.toMatch(/cron|pattern|schedule/i);
    await page.getByRole("textbox", { name: "Cron pattern" }).fill("*/10 * * * *");
    await page.getByRole("button", { name: "Create schedule" }).click();
    await page.getByRole("status").filter({ hasText: "created" }).waitFor();
    await page.getByRole("cell", { name: "ui-made", exact: true }).waitFor();
    await page.getByRole("button", { name: "Delete schedule ui-made" }).click();
    await page.getByRole("button", { name: "Delete schedule", exact: true }).click();
    await page.getByRole("cell", { name: "ui-made", exact: true }).waitFor({ state: "detached" });
    expect((await asAlice("GET", "/v1/schedules")).body.items.map((x: { name: string }) => x.name)).not.toContain("ui-made");

    // A loopback URL is refused by the API (FLOWD_ALLOW_PRIVATE_URLS is off); the page says why.
    await page.goto(`${base}/ui#/webhooks`);
    await page.getByLabel("URL").fill("http://127.0.0.1:9/hook");
    await page.getByRole("button", { name: "Create webhook" }).click();
    await expect(page.locator(".form [role=alert]").textContent()).resolves.toMatch(/address|private|url/i);
    await shot(page, "webhook-refused");
    await page.close();
  });

  test("after a drop the flow page reconnects and resumes with after: nothing missed, no reload", async () => {
    // A second API process of its own, restarted under the page while the worker goes on.
    // PORT=0: a port picked by guess can be another process's; the restart below reuses the one bound.
    let api = spawnFlowd(["--role=api"], { ...stack.env, PORT: "0" }, { bin, cwd: dir });
    // Everything this test opens is closed however it ends, so a failure here cannot leak a
    // reconnecting page (its console errors) or a process into the tests after it.
    let page: Page | null = null;
    const { Queue } = await import("bullmq");
    const IORedis = (await import("ioredis")).default;
    const connection = new IORedis(stack.env.REDIS_URL, { maxRetriesPerRequest: null });
    try {
      const apiPort = new URL((JSON.parse(await api.waitForLine(/"listening"/)) as { url: string }).url).port;
      const apiEnv = { ...stack.env, PORT: apiPort };
      await api.waitForLine(/"flowd ready"/);
      // Both branches are held (delayed far ahead) and released by the test: the short one once
      // the page shows the flow, so the page sees its events live; the long one only during the
      // drop. Nothing else can move meanwhile, so each state waited for is one the page stays in.
      const held = { name: "sleep", data: { ms: 100 }, opts: { delay: 600_000 } };
      const id = await created("/v1/flows", { name: "resume", root: { name: "echo", children: [{ name: "echo", children: [held] }, held] } });
      const release = async (job: { queueName: string; jobId: string }) => {
        const queue = new Queue(job.queueName, { connection, prefix: stack.prefix });
        try {
          await (await queue.getJob(job.jobId))!.promote();
        } finally {
          await queue.close();
        }
      };
      const root = (await asAlice("GET", `/v1/flows/${id}`)).body.root;
      page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${apiPort}/ui`);
      await page.getByLabel("API token").fill(alice);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator("#h-overview").waitFor();
      await page.goto(`http://127.0.0.1:${apiPort}/ui#/flows/${id}`);
      await waitFor(async () => (await page!.locator('.graph .node[data-status="delayed"]').count()) === 2, 15_000, "both held leaves shown");
      await page.locator('[data-connection="live"]').waitFor({ timeout: 10_000 });
      await release(root.children[0].children[0]);
      await waitFor(async () => (await page!.locator('.graph .node[data-status="completed"]').count()) === 2, 15_000, "the short branch");
      const requests: string[] = [];
      page.on("request", (r) => r.resourceType() !== "websocket" && requests.push(`${r.method()} ${r.url()}`));
      const sockets: string[] = [];
      page.on("websocket", (ws) => {
        sockets.push(ws.url());
        ws.on("framesent", (f) => sockets.push(String(f.payload)));
      });
      await api.stop("SIGKILL");
      await page.locator('[data-connection="reconnecting"]').waitFor({ timeout: 10_000 });
      await shot(page, "flow-reconnecting");
      // Every event of the long branch and the root happens while the page's API is down: only the
      // resume can bring them.
      await release(root.children[1]);
      await waitFor(async () => (await asAlice("GET", `/v1/flows/${id}`)).body.status === "completed", 20_000, "the flow to complete during the drop");
      expect(await page.locator('.graph .node[data-status="completed"]').count()).toBe(2);
      api = spawnFlowd(["--role=api"], apiEnv, { bin, cwd: dir });
      await api.waitForLine(/"flowd ready"/);
      await page.locator('[data-connection="live"]').waitFor({ timeout: 20_000 });
      await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
      expect(await page.locator('.graph .node[data-status="completed"]').count()).toBe(4);
      const resubscribe = sockets.map((m) => (m.startsWith("{") ? JSON.parse(m) : null)).find((m) => m?.op === "subscribe");
      expect(resubscribe).toMatchObject({ op: "subscribe", flowId: id });
      expect(resubscribe.after).toBeGreaterThan(0);
      expect(requests).toEqual([]);
    } finally {
      await page?.close().catch(() => {});
      await api.stop("SIGTERM");
      connection.disconnect();
    }
  }, 90_000);

  test("every page: no console error, no horizontal scroll at 390 px, no serious axe violation", async () => {
    const flowId = await created("/v1/flows", { name: "tour", root: { name: "echo", data: { x: 1 }, children: [{ name: "echo" }] } });
    const jobId = await created("/v1/jobs", { name: "echo", data: { order: 7 } });
    await created("/v1/schedules", { name: "nightly", pattern: "0 3 * * *", job: { name: "echo", data: {} } });
    await waitFor(async () => (await asAlice("GET", `/v1/flows/${flowId}`)).body.status === "completed", 20_000, "the tour flow");
    const pages: [string, string, string][] = [
      // The overview has finished jobs by now: its handler table shows their times.
      ["overview", "#/", "[data-handler-times]"],
      ["flows", "#/flows", "tr[data-flow]"],
      ["flow", `#/flows/${flowId}`, ".graph .node"],
      ["jobs", "#/jobs", "tr[data-job]"],
      ["job", `#/jobs/${jobId}`, "[data-job-panel]"],
      ["schedules", "#/schedules", "#h-schedules"],
      ["webhooks", "#/webhooks", "#h-webhooks"],
      ["handlers", "#/handlers", "tr[data-handler]"],
    ];
    const failures: string[] = [];
    for (const [width, height] of [[1280, 900], [390, 844]] as const) {
      const page = await signedIn(width, height);
      const before = browser.problems.length;
      for (const [name, hash, ready] of pages) {
        await page.goto(`${base}/ui${hash}`);
        await page.locator(ready).first().waitFor({ timeout: 10_000 });
        await page.locator('[data-connection="live"]').waitFor({ timeout: 10_000 });
        if (name === "flow") await page.locator(".graph .node").first().click();
        await shot(page, `${name}-${width}`);
        const scroll = await page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
        if (scroll > 0) failures.push(`${name} at ${width}px scrolls sideways by ${scroll}px`);
        await page.evaluate(axe.source);
        const result = await page.evaluate<any>('axe.run(document, { resultTypes: ["violations"] })');
        for (const v of result.violations as { id: string; impact: string; nodes: { target: string[] }[] }[])
          if (v.impact === "serious" || v.impact === "critical")
            failures.push(`${name} at ${width}px: axe ${v.impact} ${v.id} on ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
      }
      failures.push(...browser.problems.slice(before));
      await page.close();
    }
    expect(failures).toEqual([]);
    expect(browser.violations).toEqual([]);
    expect(browser.outside).toEqual([]);
  }, 120_000);
});
