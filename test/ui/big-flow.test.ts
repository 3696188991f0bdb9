import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createToken } from "../../src/services/tokens";
import { httpClient } from "../helpers/http";
import type { Browser } from "./browser";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * A 1,000-job flow's page in Chromium against the compiled binary: how long until its graph is
 * drawn, and whether the page stays responsive (no main-thread task over 200 ms, by the browser's
 * own long-task timing) while every job's events arrive. Prints the figures.
 */
let stack: BinaryStack;
let base: string;
let db: BinaryStack["db"];
let browser: Browser;
let token: string;

beforeAll(async () => {
  stack = await startBinaryStack("uibig");
  ({ base, db, browser } = stack);
  token = (await createToken(db.database.db, "big")).token;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe("a 1,000-job flow's page", () => {
  test("renders within a second and applies its events with no long main-thread task", async () => {
    // 1 + 9 + 9 × 110 = 1,000 jobs; the leaves sleep a little so the page is open before they finish.
    const leaves = (n: number) => Array.from({ length: n }, (_, i) => ({ name: i % 2 ? "echo" : "sleep", data: i % 2 ? { i } : { ms: 1500 } }));
    const root = { name: "echo", children: Array.from({ length: 9 }, () => ({ name: "echo", children: leaves(110) })) };
    const http = httpClient(base, token);
    const res = await http("POST", "/v1/flows", { name: "big", root });
    expect(res.status).toBe(201);
    expect(res.body.jobCount).toBe(1000);
    const id = res.body.id as string;

    const page = await browser.newPage();
    await page.goto(`${base}/ui`);
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#h-overview").waitFor();
    await page.evaluate(`window.longTasks = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.longTasks.push(e.duration); }).observe({ type: "longtask" });`);
    const t0 = Date.now();
    await page.evaluate(`location.hash = "#/flows/${id}"`);
    await page.locator(".graph .node").first().waitFor({ timeout: 10_000 });
    const renderMs = Date.now() - t0;
    expect(await page.locator(".graph .node").count()).toBe(1000);
    const beforeEvents = (await page.evaluate<number[]>("window.longTasks.slice()")).slice();
    await page.evaluate("window.longTasks = []");
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 120_000 });
    const completedNodes = await page.locator('.graph .node[data-status="completed"]').count();
    const during = await page.evaluate<number[]>("window.longTasks");
    const events = ((await db.database.sql`select count(*)::int as n from events where flow_id = ${id}`) as unknown as { n: number }[])[0]!.n;
    console.log(
      `1,000-job flow page: graph drawn in ${renderMs} ms (long tasks while rendering: ${beforeEvents.map((d) => Math.round(d)).join(", ") || "none"}); ` +
        `${events} events applied; longest main-thread task while they arrived: ${Math.round(Math.max(0, ...during))} ms (${during.length} over 50 ms)`,
    );
    await page.screenshot({ path: join(process.env.FLOWD_UI_SHOTS ?? join(tmpdir(), "flowd-ui-shots"), "big-flow.png") });
    expect(completedNodes).toBe(1000);
    expect(renderMs).toBeLessThan(3000);
    expect(Math.max(0, ...during)).toBeLessThan(200);
    await page.close();
  }, 180_000);
});
