import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { createToken } from "../../src/services/tokens";
import { httpClient } from "../helpers/http";
import { waitFor } from "../helpers/wait";
import { startBinaryStack, type BinaryStack } from "./binary-stack";

/**
 * The dashboard's Approvals in Chromium against the compiled binary: bob, a named approver, sees
 * alice's step waiting and approves it with a comment; alice rejects her own step (no approvers
 * named) from the flow page's job panel. Screenshots go to FLOWD_UI_SHOTS.
 */
const shots = process.env.FLOWD_UI_SHOTS ?? join(tmpdir(), "flowd-ui-shots");
mkdirSync(shots, { recursive: true });
let stack: BinaryStack;
let alice: string;
let bob: string;

beforeAll(async () => {
  stack = await startBinaryStack("approvals");
  alice = (await createToken(stack.db.database.db, "alice")).token;
  bob = (await createToken(stack.db.database.db, "bob")).token;
  console.log(`screenshots in ${shots}`);
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

async function signedIn(token: string): Promise<Page> {
  const page = await stack.browser.newPage(1280, 900);
  await page.goto(`${stack.base}/ui`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#h-overview").waitFor({ timeout: 10_000 });
  return page;
}

async function approvalFlow(data: Record<string, unknown>) {
  const res = await httpClient(stack.base, alice)("POST", "/v1/flows", {
    name: "deploy",
    jobs: [
      { key: "ok", name: "approval", data: { prompt: "Deploy v2 to production?", ...data } },
      { key: "deploy", name: "echo", dependsOn: ["ok"] },
    ],
  });
  expect(res.status).toBe(201);
  const id = res.body.id as string;
  const stepId = (res.body.jobs as { id: string; key: string }[]).find((j) => j.key === "ok")!.id;
  await waitFor(async () => {
    const f = await httpClient(stack.base, alice)("GET", `/v1/flows/${id}`);
    return f.body.jobs.find((j: { key: string }) => j.key === "ok").waitingFor?.reason === "approval";
  }, 20_000, "the approval to wait");
  return { id, stepId };
}

const flowStatus = (id: string) =>
  waitFor(async () => {
    const f = await httpClient(stack.base, alice)("GET", `/v1/flows/${id}?wait=5`);
    return f.body.status !== "running" ? (f.body as { status: string; jobs: { key: string; result: any }[] }) : null;
  }, 20_000, `flow ${id} to finish`);

describe("Approvals in the dashboard", () => {
  test("a named approver sees the step in Approvals and approves it with a comment", async () => {
    const { id, stepId } = await approvalFlow({ approvers: ["bob"] });
    const page = await signedIn(bob);
    await page.getByRole("link", { name: "Approvals" }).click();
    const item = page.locator(`[data-approval="${stepId}"]`);
    await item.waitFor({ timeout: 10_000 });
    expect(await item.textContent()).toContain("Deploy v2 to production?");
    await item.getByLabel("Comment").fill("looks good");
    await shot(page, "approvals-list");
    await item.getByRole("button", { name: "Approve" }).click();
    await item.getByText("Approved.").waitFor({ timeout: 10_000 });
    await shot(page, "approvals-approved");
    const done = await flowStatus(id);
    expect(done.status).toBe("completed");
    expect(done.jobs.find((j) => j.key === "ok")!.result).toMatchObject({ approved: true, by: "bob", comment: "looks good" });
    // Decided: it leaves the list.
    await page.locator(".empty", { hasText: "Nothing waits for your decision" }).waitFor({ timeout: 15_000 });
    await page.close();
  });

  test("a waiting step's panel says why it waits and until when: a sleep until its time, a signal on its key and until its timeout", async () => {
    const res = await httpClient(stack.base, alice)("POST", "/v1/flows", {
      name: "waits",
      jobs: [
        { key: "nap", name: "wait", data: { for: "1h" } },
        { key: "pay", name: "signal", data: { key: "order-7", timeoutMs: 3_600_000 } },
        { key: "after", name: "echo", dependsOn: ["nap", "pay"] },
      ],
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const views = await waitFor(async () => {
      const f = await httpClient(stack.base, alice)("GET", `/v1/flows/${id}`);
      const byKey = Object.fromEntries((f.body.jobs as { key: string; id: string; waitingFor?: { reason: string; until?: string } }[]).map((j) => [j.key, j]));
      return byKey.nap!.waitingFor?.until && byKey.pay!.waitingFor?.until ? byKey : null;
    }, 20_000, "both steps to wait");
    const page = await signedIn(alice);
    await page.goto(`${stack.base}/ui#/flows/${id}`);
    for (const [key, reason, says] of [
      ["nap", "sleep", "Sleeping until"],
      ["pay", "signal", "Waiting for a signal on key order-7 until"],
    ] as const) {
      const step = views[key]!;
      await page.locator(`[data-job="${step.id}"]`).first().click({ timeout: 10_000 });
      const waiting = page.locator(`[data-job-panel="${step.id}"] [data-waiting="${reason}"]`);
      await waiting.waitFor({ timeout: 10_000 });
      // The time as the page formats it (the browser's locale and zone).
      const until = (await page.evaluate(`new Date(${JSON.stringify(step.waitingFor!.until)}).toLocaleString(undefined, { hour12: false })`)) as string;
      const text = (await waiting.textContent())!.replace(/\s+/g, " ");
      expect(text).toContain(says);
      expect(text).toContain(until);
      expect(text).toContain("holding no worker");
      await shot(page, `waiting-${reason}`);
    }
    expect((await httpClient(stack.base, alice)("POST", `/v1/flows/${id}/cancel`)).status).toBe(200);
    await page.close();
  });

  test("a node's wait badge and its job panel follow events live: held for dependencies, sleeping, waiting for a signal, cleared when signalled", async () => {
    const page = await signedIn(alice);
    // The page loads the flow once; everything after comes from the socket.
    let loads = 0;
    page.on("request", (r) => void (/\/v1\/flows\/[^/?]+(\?|$)/.test(new URL(r.url()).pathname + "?") && r.method() === "GET" && loads++));
    const res = await httpClient(stack.base, alice)("POST", "/v1/flows", {
      name: "live waits",
      jobs: [
        { key: "nap", name: "wait", data: { for: "4s" } },
        { key: "pay", name: "signal", data: { key: "order-9" }, dependsOn: ["nap"] },
        { key: "after", name: "echo", dependsOn: ["pay"] },
      ],
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const ids = Object.fromEntries((res.body.jobs as { key: string; id: string }[]).map((j) => [j.key, j.id]));
    await page.goto(`${stack.base}/ui#/flows/${id}`);
    const node = (key: string) => page.locator(`[data-job="${ids[key]}"]`);
    // Held until its dependency completes: a grey badge on the node, the panel says so.
    await node("pay").locator(".node-wait", { hasText: "waiting: dependencies" }).waitFor({ timeout: 10_000 });
    await node("pay").click();
    const panel = page.locator(`[data-job-panel="${ids.pay}"]`);
    await panel.locator('[data-waiting="dependencies"]').waitFor({ timeout: 10_000 });
    await node("nap").locator(".node-wait", { hasText: /^sleeping until \d\d:\d\d$/ }).waitFor({ timeout: 10_000 });
    await shot(page, "wait-badges-held");
    // The sleep ends by itself; the signal step parks: its badge and panel change without a reload.
    await node("pay").locator(".node-wait", { hasText: "waiting: signal order-9" }).waitFor({ timeout: 20_000 });
    await panel.locator('[data-waiting="signal"]', { hasText: "Waiting for a signal on key order-9" }).waitFor({ timeout: 10_000 });
    // A screen reader hears the whole reason: the node's accessible name is its title.
    expect(await page.getByRole("button", { name: "pay (signal): active. Waiting for a signal on key order-9 (holding no worker)" }).count()).toBe(1);
    expect(await node("pay").getAttribute("data-waiting")).toBe("signal");
    expect(await node("nap").getAttribute("data-waiting")).toBeNull();
    expect(await node("after").locator(".node-wait").textContent()).toBe("waiting: dependencies");
    await shot(page, "wait-badges-signal");
    const signalled = await httpClient(stack.base, alice)("POST", "/v1/signals", { key: "order-9", payload: { paid: true } });
    expect(signalled.status).toBe(200);
    expect(signalled.body.jobs).toHaveLength(1);
    // Signalled: the badge and the panel's line go, the node says completed.
    await page.locator(`[data-job="${ids.pay}"][data-status="completed"]`).waitFor({ timeout: 20_000 });
    await page.locator(`[data-job="${ids.after}"][data-status="completed"]`).waitFor({ timeout: 20_000 });
    expect(await page.locator(".node-wait").count()).toBe(0);
    expect(await page.locator(".node.waiting").count()).toBe(0);
    expect(await panel.locator("[data-waiting]").count()).toBe(0);
    expect(await page.getByRole("button", { name: "pay (signal): completed", exact: true }).count()).toBe(1);
    await shot(page, "wait-badges-cleared");
    expect(loads).toBe(1);
    expect(stack.browser.problems).toEqual([]);
    await page.close();
  });

  test("the owner rejects their own step from the flow page's job panel", async () => {
    const { id, stepId } = await approvalFlow({});
    const page = await signedIn(alice);
    await page.goto(`${stack.base}/ui#/flows/${id}`);
    await page.locator(`[data-job="${stepId}"]`).first().click({ timeout: 10_000 });
    const panel = page.locator(`[data-job-panel="${stepId}"]`);
    await panel.waitFor({ timeout: 10_000 });
    await panel.locator('[data-waiting="approval"]').waitFor({ timeout: 10_000 });
    await panel.getByLabel("Comment").fill("not today");
    await shot(page, "approval-job-panel");
    await panel.getByRole("button", { name: "Reject" }).click();
    await panel.getByText("Rejected.").waitFor({ timeout: 10_000 });
    const done = await flowStatus(id);
    expect(done.status).toBe("failed");
    expect(done.jobs.find((j) => j.key === "ok")!.result).toMatchObject({ approved: false, by: "alice", comment: "not today" });
    // The events that end the wait do not take the answer away; a fresh page says who decided, from the step's result.
    expect(await panel.getByText("Rejected.").count()).toBe(1);
    await page.reload();
    await page.locator(`[data-job="${stepId}"]`).first().click({ timeout: 10_000 });
    await panel.getByText("Rejected. By alice").waitFor({ timeout: 10_000 });
    expect(await panel.locator(".decision-done").textContent()).toContain("“not today”");
    expect(await panel.getByRole("button", { name: "Reject" }).count()).toBe(0);
    await shot(page, "approval-rejected");
    expect(stack.browser.problems).toEqual([]);
    expect(stack.browser.violations).toEqual([]);
    await page.close();
  });
});
