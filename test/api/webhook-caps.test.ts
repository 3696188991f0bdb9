import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";

// FLOWD_MAX_WEBHOOKS_PER_USER and the duplicate refusal, against a real API process.
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 0, tag: "hookcap", env: { FLOWD_MAX_WEBHOOKS_PER_USER: "3" } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

const url = (path: string) => `http://127.0.0.1:9${path}`;
const count = async (token?: string) => ((await cluster.apis[0]!.http("GET", "/v1/webhooks?limit=100", undefined, token ? { token } : {})).body.items as unknown[]).length;

describe("webhook caps", () => {
  test("the same URL with the same event types twice is 409 webhook_exists; other event types are another webhook", async () => {
    const api = cluster.apis[0]!;
    const first = await api.http("POST", "/v1/webhooks", { url: url("/dup"), events: ["flow.completed", "flow.failed"] });
    expect(first.status).toBe(201);
    // The same set in another order, with a repeat, is the same webhook.
    const again = await api.http("POST", "/v1/webhooks", { url: url("/dup"), events: ["flow.failed", "flow.completed", "flow.failed"] });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("webhook_exists");
    expect(again.body.error.message).toContain(first.body.id);
    expect(again.body).not.toHaveProperty("secret");
    const other = await api.http("POST", "/v1/webhooks", { url: url("/dup"), events: ["flow.completed"] });
    expect(other.status).toBe(201);
    expect(await count()).toBe(2);
  });

  test("one more than FLOWD_MAX_WEBHOOKS_PER_USER is 409 webhook_limit and stores nothing; other users are not counted", async () => {
    const api = cluster.apis[0]!;
    expect((await api.http("POST", "/v1/webhooks", { url: url("/third"), events: ["*"] })).status).toBe(201);
    const over = await api.http("POST", "/v1/webhooks", { url: url("/fourth"), events: ["*"] });
    expect(over.status).toBe(409);
    expect(over.body.error).toMatchObject({ code: "webhook_limit" });
    expect(over.body.error.message).toContain("FLOWD_MAX_WEBHOOKS_PER_USER");
    expect(await count()).toBe(3);
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from webhooks where url = ${url("/fourth")}`;
    expect(row?.n).toBe(0);
    // Deleting one makes room again.
    const items = (await api.http("GET", "/v1/webhooks?limit=100")).body.items as { id: string; url: string }[];
    expect((await api.http("DELETE", `/v1/webhooks/${items.find((w) => w.url === url("/third"))!.id}`)).status).toBe(204);
    expect((await api.http("POST", "/v1/webhooks", { url: url("/fourth"), events: ["*"] })).status).toBe(201);
  });

  test("creates racing at the cap: exactly the cap is stored, the rest refused", async () => {
    const api = cluster.apis[0]!;
    const bob = await cluster.newUser("bob-hookcap");
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => api.http("POST", "/v1/webhooks", { url: url(`/race/${i}`), events: ["*"] }, { token: bob })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    expect(results.filter((r) => r.status === 409 && r.body.error.code === "webhook_limit")).toHaveLength(7);
    expect(await count(bob)).toBe(3);
    // The same URL and events sent twice at once: one stored.
    const carol = await cluster.newUser("carol-hookcap");
    const pair = await Promise.all([0, 1].map(() => api.http("POST", "/v1/webhooks", { url: url("/same"), events: ["*"] }, { token: carol })));
    expect(pair.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(await count(carol)).toBe(1);
  });
});
