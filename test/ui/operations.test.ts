import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createToken } from "../../src/services/tokens";
import { httpClient } from "../helpers/http";
import { waitFor } from "../helpers/wait";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * The dashboard's Operations page in Chromium against the compiled binary: a bulk retry by filter
 * started over REST shows with its counts, and finishes there as it does in GET /v1/operations/:id.
 */
const shots = process.env.FLOWD_UI_SHOTS ?? join(tmpdir(), "flowd-ui-shots");
mkdirSync(shots, { recursive: true });
let stack: BinaryStack;
let token: string;

beforeAll(async () => {
  stack = await startBinaryStack("operations");
  token = (await createToken(stack.db.database.db, "ops")).token;
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

describe("Operations in the dashboard", () => {
  test("a bulk retry by filter shows its progress and ends completed with the counts GET /v1/operations/:id gives", async () => {
    const http = httpClient(stack.base, token);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await http("POST", "/v1/flows", { name: "nightly-etl", root: { name: "fail", data: { times: 1 } } });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    for (const id of ids) expect((await http("GET", `/v1/flows/${id}?wait=20`)).body.status).toBe("failed");
    const started = await http("POST", "/v1/flows/bulk/retry", { status: "failed", name: "nightly-etl" });
    expect(started.status).toBe(202);
    const opId = started.body.id as string;

    const page = await stack.browser.newPage(1280, 900);
    await page.goto(`${stack.base}/ui`);
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#h-overview").waitFor({ timeout: 10_000 });
    await page.getByRole("link", { name: "Operations" }).click();
    await page.locator("#h-operations").waitFor();
    const row = page.locator(`tr[data-operation="${opId}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.locator("code").first().textContent()).toBe("flows.retry");
    // The page polls: it shows the operation completed without a reload.
    await page.locator(`tr[data-operation="${opId}"][data-status="completed"]`).waitFor({ timeout: 30_000 });
    const op = (await http("GET", `/v1/operations/${opId}`)).body;
    expect(op).toMatchObject({ status: "completed", matched: 5, done: 5 });
    expect(await row.locator("[data-counts]").textContent()).toBe(`${op.done} done, ${op.skipped} skipped, ${op.failed} failed of ${op.matched}`);
    expect(await row.getByRole("button", { name: "Stop" }).count()).toBe(0);
    await waitFor(async () => (await http("GET", `/v1/flows/${ids[0]}?wait=5`)).body.status === "completed", 20_000, "a retried flow to complete");
    await page.screenshot({ path: join(shots, "operations.png"), fullPage: true });
    expect(stack.browser.problems).toEqual([]);
    expect(stack.browser.violations).toEqual([]);
    await page.close();
  }, 90_000);
});
