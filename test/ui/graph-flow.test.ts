import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { createToken } from "../../src/services/tokens";
import { httpClient } from "../helpers/http";
import { waitFor } from "../helpers/wait";
import type { Browser } from "./browser";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * A graph flow's page in Chromium against the compiled binary: drawn as a layered DAG (dagre),
 * live over the socket, each job's panel with the jobs it depends on and their results. The
 * screenshot goes to FLOWD_UI_GRAPH_SHOT (default /tmp/ui-graph.png) to be looked at.
 */
const SHOT = process.env.FLOWD_UI_GRAPH_SHOT ?? "/tmp/ui-graph.png";
let stack: BinaryStack;
let base: string;
let browser: Browser;
let token: string;
let api: ReturnType<typeof httpClient>;

/** `fan` adds `n` `square` jobs to its flow while it runs and joins on them (ctx.spawn / ctx.waitFor). */
const MODULE = `
export default {
  fan: {
    async run(ctx) {
      const keys = Array.from({ length: ctx.data.n }, (_, i) => "sq-" + i);
      await ctx.spawn(keys.map((key, i) => ({ key, name: "square", data: { i, ms: ctx.data.ms } })));
      const results = await ctx.waitFor(keys);
      return { sum: Object.values(results).reduce((a, r) => a + r.sq, 0) };
    },
  },
  square: {
    async run(ctx) {
      await new Promise((r) => setTimeout(r, ctx.data.ms));
      return { sq: ctx.data.i * ctx.data.i };
    },
  },
};
`;
const modules = mkdtempSync(join(tmpdir(), "flowd-uigraph-handlers-"));

beforeAll(async () => {
  writeFileSync(join(modules, "fan.ts"), MODULE);
  stack = await startBinaryStack("uigraph", { FLOWD_HANDLERS: join(modules, "fan.ts") });
  ({ base, browser } = stack);
  token = (await createToken(stack.db.database.db, "graph")).token;
  api = httpClient(base, token);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  rmSync(modules, { recursive: true, force: true });
});

async function signedIn(): Promise<Page> {
  const page = await browser.newPage(1280, 900);
  await page.goto(`${base}/ui`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#h-overview").waitFor({ timeout: 10_000 });
  return page;
}

/** Node boxes as the browser drew them, by key: none may overlap another. */
async function boxes(page: Page) {
  return page.locator(".graph .node").evaluateAll((nodes) =>
    nodes.map((n) => {
      const r = n.getBoundingClientRect();
      return { key: n.querySelector(".node-name")!.textContent!, status: n.getAttribute("data-status"), x: r.x, y: r.y, w: r.width, h: r.height };
    }),
  );
}

describe("a graph flow's page", () => {
  test("a diamond: 4 nodes, 4 edges, dependencies above dependents, live to completed; a node's panel shows its dependencies' results", async () => {
    const res = await api("POST", "/v1/flows", {
      name: "orders-diamond",
      jobs: [
        { key: "fetch-orders", name: "sleep", data: { ms: 5000 } },
        { key: "price", name: "echo", data: { currency: "EUR" }, dependsOn: ["fetch-orders"] },
        { key: "reserve-stock", name: "echo", data: { warehouse: "north" }, dependsOn: ["fetch-orders"] },
        { key: "ship", name: "echo", data: { carrier: "post" }, dependsOn: ["price", "reserve-stock"] },
      ],
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const page = await signedIn();
    await page.goto(`${base}/ui#/flows/${id}`);
    await page.locator('[data-flow-status="running"]').waitFor({ timeout: 10_000 });
    await page.locator('.graph[data-drawn="all"]').waitFor();
    expect(await page.locator(".graph .node").count()).toBe(4);
    expect(await page.locator(".graph .edges polyline").count()).toBe(4);
    expect(await page.getByRole("group", { name: /as a graph/ }).count()).toBe(1);
    // Top-down layers: the source alone on top, the two middle jobs side by side, the join below; no box over another.
    const b = Object.fromEntries((await boxes(page)).map((x) => [x.key, x]));
    expect(b["price"]!.y).toBeGreaterThan(b["fetch-orders"]!.y + b["fetch-orders"]!.h);
    expect(b["price"]!.y).toBe(b["reserve-stock"]!.y);
    expect(Math.abs(b["price"]!.x - b["reserve-stock"]!.x)).toBeGreaterThanOrEqual(b["price"]!.w);
    expect(b["ship"]!.y).toBeGreaterThan(b["price"]!.y + b["price"]!.h);
    // Every edge has an arrow into its dependent.
    expect(await page.locator(".graph .edges polyline[marker-end]").count()).toBe(4);

    // Live: every node turns completed over the socket, with no request and no reload.
    const requests: string[] = [];
    page.on("request", (r) => {
      if (r.resourceType() !== "websocket") requests.push(`${r.method()} ${r.url()}`);
    });
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await page.locator('.graph .node[data-status="completed"]').count()) === 4, 10_000, "every node completed");
    expect(requests).toEqual([]);

    // The join's panel: its two dependencies, each with the result it handed over, and a way to open them.
    await page.locator(".graph .node", { hasText: "ship" }).click();
    const panel = page.locator("[data-job-panel]");
    await panel.waitFor();
    expect(await panel.locator("#job-panel-title").textContent()).toContain("ship");
    const deps = panel.locator("[data-dependency]");
    expect(await deps.evaluateAll((ls) => ls.map((l) => l.getAttribute("data-dependency")))).toEqual(["price", "reserve-stock"]);
    expect(await panel.getByLabel("Result of price").textContent()).toContain('"currency": "EUR"');
    expect(await panel.getByLabel("Result of reserve-stock").textContent()).toContain('"warehouse": "north"');
    // Its own result holds both, by key.
    const own = JSON.parse((await panel.getByLabel("Job result").textContent())!);
    expect(Object.keys(own.parents).sort()).toEqual(["price", "reserve-stock"]);
    await page.screenshot({ path: SHOT, fullPage: true });
    // From a dependency's link to its panel, which names the join as needing it.
    await panel.getByRole("button", { name: "price" }).click();
    await page.locator("#job-panel-title", { hasText: "price" }).waitFor();
    await waitFor(async () => (await panel.locator("[data-dependency]").count()) === 1, 5_000, "price's one dependency");
    expect(await panel.locator("[data-dependency]").getAttribute("data-dependency")).toBe("fetch-orders");
    expect(await panel.getByRole("button", { name: "ship" }).count()).toBe(1);
    expect(browser.problems).toEqual([]);
    expect(browser.violations).toEqual([]);
    await page.close();
  }, 60_000);

  test("a 1,000-job graph with 3,000 edges is laid out in the layout worker, drawn whole, and completes live", async () => {
    // As bench graphs: 4 layers of 250, each job past the first depending on 4 of the layer above.
    const jobs = Array.from({ length: 1000 }, (_, n) => {
      const [l, i] = [Math.floor(n / 250), n % 250];
      return { key: `${l}.${i}`, name: "echo", ...(l ? { dependsOn: [0, 1, 2, 3].map((k) => `${l - 1}.${(i + k * 61) % 250}`) } : {}) };
    });
    const page = await signedIn();
    const res = await api("POST", "/v1/flows", { name: "big-graph", jobs });
    expect(res.status).toBe(201);
    await page.evaluate(`location.hash = "#/flows/${res.body.id}"`);
    await page.locator('.graph[data-drawn="all"]').waitFor({ timeout: 60_000 });
    expect(await page.locator(".graph .node").count()).toBe(1000);
    expect(await page.locator(".graph .edges polyline").count()).toBe(3000);
    // The layout ran in a worker started from the dashboard's own bundle.
    expect(page.workers().map((w) => new URL(w.url()).pathname)).toEqual([expect.stringMatching(/^\/ui\/assets\/.+\.js$/)]);
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 120_000 });
    await waitFor(async () => (await page.locator('.graph .node[data-status="completed"]').count()) === 1000, 20_000, "every node completed");
    expect(browser.problems).toEqual([]);
    expect(browser.violations).toEqual([]);
    await page.close();
  }, 200_000);

  test("jobs a running job adds to the flow appear live, each drawn from the job that added it, and the join completes", async () => {
    // Signed in before the flow exists: a slow sign-in on a loaded machine must not let the jobs be added before the page opens.
    const page = await signedIn();
    const res = await api("POST", "/v1/flows", {
      name: "fan-out",
      jobs: [
        { key: "start", name: "sleep", data: { ms: 1500 } },
        { key: "fan", name: "fan", data: { n: 5, ms: 1500 }, dependsOn: ["start"] },
        { key: "report", name: "echo", dependsOn: ["fan"] },
      ],
    });
    expect(res.status).toBe(201);
    await page.goto(`${base}/ui#/flows/${res.body.id}`);
    await page.locator('.graph[data-drawn="all"]').waitFor({ timeout: 10_000 });
    expect(await page.locator(".graph .node").count()).toBe(3);
    const navigations: string[] = [];
    page.on("framenavigated", (f) => f === page.mainFrame() && navigations.push(f.url()));
    // The five added jobs arrive as events about jobs the page does not know: it loads the flow again and lays it out anew.
    await waitFor(async () => (await page.locator(".graph .node").count()) === 8, 30_000, "the 5 added jobs drawn");
    expect(await page.locator(".graph .edges polyline.spawn").count()).toBe(5);
    expect(await page.locator(".graph .edges polyline").count()).toBe(7);
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await page.locator('.graph .node[data-status="completed"]').count()) === 8, 10_000, "every node completed");
    expect(navigations).toEqual([]);
    await page.locator(".graph .node", { hasText: "fan" }).click();
    const panel = page.locator("[data-job-panel]");
    expect(await panel.locator("[data-added] li").count()).toBe(5);
    expect(JSON.parse((await panel.getByLabel("Job result").textContent())!)).toEqual({ sum: 0 + 1 + 4 + 9 + 16 });
    await page.screenshot({ path: SHOT.replace(/\.png$/, "-spawn.png"), fullPage: true });
    await panel.getByRole("button", { name: "sq-3" }).click();
    await page.locator('[data-spawned-by="fan"]').waitFor();
    expect(browser.problems).toEqual([]);
    await page.close();
  }, 90_000);

  test("a retried graph (its failed jobs run again under new ids) is laid out again and completes on the page", async () => {
    const res = await api("POST", "/v1/flows", {
      name: "flaky-graph",
      jobs: [
        { key: "a", name: "echo" },
        { key: "b", name: "fail", data: { message: "boom", times: 1 }, dependsOn: ["a"] },
        { key: "c", name: "echo", dependsOn: ["a", "b"] },
      ],
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    await waitFor(async () => (await api("GET", `/v1/flows/${id}`)).body.status === "failed", 20_000, "the flow to fail");
    const page = await signedIn();
    await page.goto(`${base}/ui#/flows/${id}`);
    await page.locator('[data-flow-status="failed"]').waitFor({ timeout: 10_000 });
    expect(await page.locator(".graph .node").count()).toBe(3);
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page.getByRole("button", { name: "Retry flow" }).click();
    await page.locator('[data-flow-status="completed"]').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await page.locator('.graph .node[data-status="completed"]').count()) === 3, 10_000, "every node completed");
    expect(await page.locator(".graph .edges polyline").count()).toBe(3);
    const ids = (await api("GET", `/v1/flows/${id}`)).body.jobs.map((j: { id: string }) => j.id).sort();
    expect(await page.locator(".graph .node").evaluateAll((ns) => ns.map((n) => n.getAttribute("data-job")).sort())).toEqual(ids);
    expect(browser.problems).toEqual([]);
    await page.close();
  }, 60_000);
});
