import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createToken } from "../../src/services/tokens";
import { httpClient } from "../helpers/http";
import type { Browser } from "./browser";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * A 1,000-job flow's page in Chromium against the compiled binary: every node drawn (in slices, in
 * tree order), and every one turning completed live. How fast, and how long the main thread is
 * held, is measured by `bun run bench flow-page` (bench/flow-page.ts), not here.
 */
let stack: BinaryStack;
let base: string;
let browser: Browser;
let token: string;

beforeAll(async () => {
  stack = await startBinaryStack("uibig");
  ({ base, browser } = stack);
  token = (await createToken(stack.db.database.db, "big")).token;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe("a 1,000-job flow's page", () => {
  test("draws every job, root first, and shows each one completing without reload", async () => {
    // 1 + 9 + 9 × 110 = 1,000 jobs; half the leaves sleep briefly, so most finish while the page is open.
    const leaves = Array.from({ length: 110 }, (_, i) => (i % 2 ? { name: "echo", data: { i } } : { name: "sleep", data: { ms: 200 } }));
    const root = { name: "echo", children: Array.from({ length: 9 }, () => ({ name: "echo", children: leaves })) };
    const page = await browser.newPage();
    await page.goto(`${base}/ui`);
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#h-overview").waitFor();
    const res = await httpClient(base, token)("POST", "/v1/flows", { name: "big", root });
    expect(res.status).toBe(201);
    expect(res.body.jobCount).toBe(1000);
    await page.evaluate(`location.hash = "#/flows/${res.body.id}"`);
    await page.locator('.graph[data-drawn="all"]').waitFor({ timeout: 20_000 });
    expect(await page.locator(".graph .node").count()).toBe(1000);
    // Slices draw the root's column first, but the DOM (the Tab order) stays the tree's order.
    const first = await page.locator(".graph .node").first().getAttribute("data-job");
    expect(first).toBe((await httpClient(base, token)("GET", `/v1/flows/${res.body.id}`)).body.root.id);
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 120_000 });
    expect(await page.locator('.graph .node[data-status="completed"]').count()).toBe(1000);
    await page.screenshot({ path: join(process.env.FLOWD_UI_SHOTS ?? join(tmpdir(), "flowd-ui-shots"), "big-flow.png") });
    await page.close();
  }, 180_000);
});
