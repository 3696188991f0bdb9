import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import axe from "axe-core";
import type { Page } from "playwright-core";
import { createToken } from "../../src/services/tokens";
import { httpClient } from "../helpers/http";
import { waitFor } from "../helpers/wait";
import type { Browser } from "./browser";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * The definitions pages in Chromium against the compiled binary: the list, one definition's
 * versions side by side as a JSON diff, a Run form made from the version's input schema that
 * starts a flow and opens it, and the flow's link back to its definition version. The screenshot
 * goes to FLOWD_UI_DEFINITIONS_SHOT (default /tmp/ui-definitions.png) to be looked at.
 */
const SHOT = process.env.FLOWD_UI_DEFINITIONS_SHOT ?? "/tmp/ui-definitions.png";
let stack: BinaryStack;
let base: string;
let browser: Browser;
let token: string;
let api: ReturnType<typeof httpClient>;

beforeAll(async () => {
  stack = await startBinaryStack("uidefs");
  ({ base, browser } = stack);
  token = (await createToken(stack.db.database.db, "defs")).token;
  api = httpClient(base, token);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

async function signedIn(width = 1280, height = 900): Promise<Page> {
  const page = await browser.newPage(width, height);
  await page.goto(`${base}/ui`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#h-overview").waitFor({ timeout: 10_000 });
  return page;
}

const input = {
  type: "object",
  required: ["customer", "seats"],
  properties: {
    customer: { type: "string", minLength: 1, description: "The customer's id" },
    seats: { type: "integer", minimum: 1 },
    trial: { type: "boolean" },
    plan: { enum: ["basic", "pro"] },
  },
  additionalProperties: false,
};
const v1 = {
  description: "Onboard a customer",
  input,
  flow: { root: { name: "echo", data: { customer: { $input: "/customer" } }, children: [{ name: "echo", data: { seats: { $input: "/seats" } } }] } },
};
const v2 = {
  description: "Onboard a customer, with their plan",
  input,
  flow: {
    root: {
      name: "echo",
      data: { customer: { $input: "/customer" }, trial: { $input: "/trial" } },
      children: [{ name: "echo", data: { seats: { $input: "/seats" }, plan: "basic" } }],
    },
  },
};

describe("the definitions pages", () => {
  test("list, versions side by side, a Run form from the input schema that starts the flow and opens it", async () => {
    for (const body of [v1, v2]) {
      const res = await api("PUT", "/v1/definitions/onboard-customer", body);
      expect(res.status).toBe(201);
    }
    const page = await signedIn();
    await page.getByRole("link", { name: "Definitions" }).click();
    await page.locator('tr[data-definition="onboard-customer"]').waitFor({ timeout: 10_000 });
    await page.getByRole("link", { name: "onboard-customer" }).click();
    await page.locator("#h-definition").waitFor();
    expect(await page.locator("tr[data-version]").count()).toBe(2);

    // v1 on the left, v2 on the right; changed lines marked on both sides, the rest shown once per side.
    const diff = page.getByRole("table", { name: "Version 1 beside version 2" });
    await diff.waitFor();
    expect(await diff.locator("td.del").count()).toBeGreaterThan(0);
    expect(await diff.locator("td.ins").count()).toBeGreaterThan(0);
    expect(await diff.locator("td.ins", { hasText: '"trial"' }).count()).toBeGreaterThan(0);
    expect(await diff.locator("td.del", { hasText: "Onboard a customer" }).count()).toBe(1);

    // The form: one field per property, typed from the schema; required ones marked.
    const form = page.locator("form.run-form");
    expect(await form.getAttribute("data-run-version")).toBe("2");
    // Required fields first, then the rest by name (Postgres keeps a schema's keys in its own order).
    expect(await form.locator("input[id^=run-], select[id^=run-], textarea[id^=run-]").evaluateAll((els) => els.map((e) => e.id))).toEqual(["run-customer", "run-seats", "run-plan", "run-trial"]);
    await form.getByLabel(/^customer/).fill("c-42");
    expect(await form.getByLabel(/^seats/).getAttribute("type")).toBe("number");
    expect(await form.getByLabel(/^plan/).evaluate((s) => Array.from((s as unknown as { options: ArrayLike<{ value: string }> }).options, (o) => o.value))).toEqual(["", "basic", "pro"]);
    await form.getByLabel(/^plan/).selectOption("pro");
    await form.getByRole("checkbox", { name: /^trial/ }).check();

    // Refused by the server's check of the schema: its message and path shown, nothing started.
    await form.getByLabel(/^seats/).fill("0");
    await form.getByRole("button", { name: "Run" }).click();
    const alert = form.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toContain("/input/seats");
    expect((await api("GET", "/v1/flows?definition=onboard-customer")).body.items).toEqual([]);

    await form.getByLabel(/^seats/).fill("12");
    await page.screenshot({ path: SHOT, fullPage: true });
    await form.getByRole("button", { name: "Run" }).click();
    await page.waitForURL(/#\/flows\/[a-z0-9]+$/, { timeout: 10_000 });
    const flowId = page.url().split("/").pop()!;
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    const flow = (await api("GET", `/v1/flows/${flowId}`)).body;
    expect(flow.definition).toEqual({ name: "onboard-customer", version: 2 });
    expect(flow.root.data).toEqual({ customer: "c-42", trial: true });
    expect(flow.root.children[0].data).toEqual({ seats: 12, plan: "basic" });

    // The flow names its definition version and links to it; that page compares it with v1.
    const link = page.locator('[data-link="definition"]');
    expect(await link.textContent()).toBe("onboard-customer v2");
    await link.click();
    await page.waitForURL(/#\/definitions\/onboard-customer\?version=2$/);
    await page.getByRole("table", { name: "Version 1 beside version 2" }).waitFor();
    await waitFor(async () => (await page.locator(".runs li").count()) === 1, 10_000, "the run listed");
    expect(await page.locator(".runs a").getAttribute("href")).toBe(`#/flows/${flowId}`);
    // The refused run is the one failed request the console reports.
    expect(browser.problems.filter((p) => !p.includes("status of 400"))).toEqual([]);
    expect(browser.violations).toEqual([]);
    await page.close();
  }, 60_000);

  test("a schema that is not an object of simple fields gets one JSON box; bad JSON is refused in the page", async () => {
    const res = await api("PUT", "/v1/definitions/raw-input", { input: { type: "array", items: { type: "integer" } }, flow: { root: { name: "echo", data: { xs: { $input: "" } } } } });
    expect(res.status).toBe(201);
    const page = await signedIn();
    await page.goto(`${base}/ui#/definitions/raw-input`);
    const form = page.locator("form.run-form");
    await form.waitFor();
    // One version: nothing older to compare with.
    await page.getByText("Version 1 alone").waitFor();
    const box = form.getByLabel("Input (JSON)");
    await box.fill("[1, 2");
    await form.getByRole("button", { name: "Run" }).click();
    expect(await form.getByRole("alert").textContent()).toContain("not valid JSON");
    expect((await api("GET", "/v1/flows?definition=raw-input")).body.items).toEqual([]);
    await box.fill("[1, 2, 3]");
    await form.getByRole("button", { name: "Run" }).click();
    await page.waitForURL(/#\/flows\/[a-z0-9]+$/, { timeout: 10_000 });
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    const flow = (await api("GET", `/v1/flows/${page.url().split("/").pop()}`)).body;
    expect(flow.root.data).toEqual({ xs: [1, 2, 3] });
    await page.close();
  }, 60_000);

  test("the new pages (definitions, one definition, a graph flow's page with a run's links): no console error, no sideways scroll at 390 px, no serious axe violation", async () => {
    await api("PUT", "/v1/definitions/tour", { description: "v1", flow: { jobs: [{ key: "a", name: "echo" }, { key: "b", name: "echo", dependsOn: ["a"] }] } });
    await api("PUT", "/v1/definitions/tour", { description: "v2", input: { type: "object", properties: { n: { type: "integer" } } }, flow: { jobs: [{ key: "a", name: "echo", data: { n: { $input: "/n" } } }, { key: "b", name: "echo", dependsOn: ["a"] }] } });
    const run = await api("POST", "/v1/definitions/tour/runs", { input: { n: 3 } });
    expect(run.status).toBe(201);
    await api("POST", "/v1/triggers", { topic: "tour.started", definition: "tour" });
    const published = await api("POST", "/v1/publish", { topic: "tour.started", payload: { n: 4 }, id: "tour-1" });
    expect(published.body.started).toHaveLength(1);
    const pages: [string, string, string][] = [
      ["definitions", "#/definitions", "tr[data-definition]"],
      ["definition", "#/definitions/tour", "form.run-form"],
      ["run", `#/flows/${run.body.id}`, ".graph .node"],
      ["event-run", `#/flows/${published.body.started[0].flowId}`, '[data-link="event"]'],
    ];
    const failures: string[] = [];
    for (const [width, height] of [[1280, 900], [390, 844]] as const) {
      const page = await signedIn(width, height);
      const before = browser.problems.length;
      for (const [name, hash, ready] of pages) {
        await page.goto(`${base}/ui${hash}`);
        await page.locator(ready).first().waitFor({ timeout: 10_000 });
        if (name === "run") await page.locator(".graph .node").last().click();
        const scroll = await page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
        if (scroll > 0) failures.push(`${name} at ${width}px scrolls sideways by ${scroll}px`);
        await page.evaluate(axe.source);
        const result = await page.evaluate<any>('axe.run(document, { resultTypes: ["violations"] })');
        for (const v of result.violations as { id: string; impact: string; nodes: { target: string[] }[] }[])
          if (v.impact === "serious" || v.impact === "critical")
            failures.push(`${name} at ${width}px: axe ${v.impact} ${v.id} on ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
      }
      // The event link lands on its row of published events.
      await page.locator('[data-link="event"]').click();
      await page.locator('tr.highlight[aria-current="true"]', { hasText: "tour-1" }).waitFor();
      failures.push(...browser.problems.slice(before));
      await page.close();
    }
    expect(failures).toEqual([]);
    expect(browser.violations).toEqual([]);
    expect(browser.outside).toEqual([]);
  }, 90_000);

  test("a missing definition reads as not found", async () => {
    const page = await signedIn();
    await page.goto(`${base}/ui#/definitions/no-such-thing`);
    await page.getByRole("heading", { name: "Definition not found" }).waitFor();
    await page.close();
  });
});
