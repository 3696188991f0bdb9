import { afterAll, beforeAll, expect, test } from "bun:test";
import { PAGE_MAX_BYTES } from "../../src/services/cursor";
import { startStack, type Stack } from "../helpers/stack";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "pagebytes" });
});
afterAll(async () => {
  await stack?.stop();
});

test("a page of large jobs ends at PAGE_MAX_BYTES of JSON, and its cursor goes on without skipping or repeating", async () => {
  const big = "x".repeat(900 * 1024);
  const created: string[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await stack.http("POST", "/v1/jobs", { name: "echo", data: { i, big } });
    expect(r.status).toBe(201);
    created.push(r.body.id);
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await fetch(`${stack.baseUrl}/v1/jobs?limit=100${cursor ? `&cursor=${cursor}` : ""}`, { headers: { authorization: `Bearer ${stack.token}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    // One item may pass the bound on its own; a page of several never passes it by more than one.
    expect(text.length).toBeLessThan(PAGE_MAX_BYTES + 1024 * 1024);
    const body = JSON.parse(text) as { items: { id: string }[]; nextCursor: string | null };
    expect(body.items.length).toBeGreaterThan(0);
    seen.push(...body.items.map((j) => j.id));
    cursor = body.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  expect(pages).toBe(2);
  expect(seen).toEqual([...created].reverse());
});
