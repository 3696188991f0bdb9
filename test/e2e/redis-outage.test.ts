import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startRedisServer } from "../helpers/redis-server";
import { waitFor } from "../helpers/wait";
import { startCountingReceiver } from "../helpers/receiver";

// A Redis of the test's own, so it can go away and come back; an API and a worker process on it.
let redis: Awaited<ReturnType<typeof startRedisServer>>;
let cluster: Cluster;
const receiver = startCountingReceiver();
const hits = receiver.hits;
beforeAll(async () => {
  redis = await startRedisServer();
  cluster = await startCluster({ apis: 1, workers: 1, tag: "outage", env: { REDIS_URL: redis.url } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  await redis?.dispose();
  receiver.stop();
});

describe("Redis outage", () => {
  test("a flow accepted while Redis refuses connections waits as pending and completes, once, when Redis is back", async () => {
    const api = cluster.apis[0]!;
    await redis.stop();
    const ready = await api.http("GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body.error.details.redis).toStartWith("down");

    const accepted = await api.http("POST", "/v1/flows", {
      name: "during outage",
      root: {
        name: "echo",
        data: { during: "outage" },
        children: [{ name: "http", data: { url: `http://127.0.0.1:${receiver.port}/child`, method: "POST", body: { n: 1 } } }],
      },
    });
    expect(accepted.status).toBe(201);
    expect(accepted.body.root.status).toBe("pending");
    expect(accepted.body.root.children[0].status).toBe("pending");

    await redis.start();
    const done = await waitFor(async () => {
      const res = await api.http("GET", `/v1/flows/${accepted.body.id}?wait=5`);
      return res.body.status === "completed" && res.body;
    }, 45_000, "the flow accepted during the outage to complete");
    expect(done.root.result.data).toEqual({ during: "outage" });
    expect(Object.values(done.root.result.children)).toEqual([{ status: 200, body: { path: "/child" } }]);
    // The child's handler ran exactly once, though the API's add failed and the enqueuer added it later.
    expect(hits.get("/child")).toBe(1);

    // New work flows normally after the outage.
    const after = await api.http("POST", "/v1/flows", { name: "after", root: { name: "echo" } });
    const res = await api.http("GET", `/v1/flows/${after.body.id}?wait=20`);
    expect(res.body.status).toBe("completed");
  }, 90_000);

  test("concurrent single creates (group-committed) and a bulk create during an outage wait as pending and each run once", async () => {
    const api = cluster.apis[0]!;
    await redis.stop();
    const http = (i: number) => ({ name: "http", data: { url: `http://127.0.0.1:${receiver.port}/gc-${i}`, method: "POST", body: { i } } });
    const singles = await Promise.all(Array.from({ length: 16 }, (_, i) => api.http("POST", "/v1/jobs", http(i))));
    expect(singles.map((r) => r.status)).toEqual(Array(16).fill(201));
    expect(singles.map((r) => r.body.status)).toEqual(Array(16).fill("pending"));
    const bulk = await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: 16 }, (_, i) => http(100 + i)) });
    expect(bulk.status).toBe(201);
    expect(bulk.body.items.map((j: any) => j.status)).toEqual(Array(16).fill("pending"));
    const ids = [...singles.map((r) => r.body.id), ...bulk.body.items.map((j: any) => j.id)];
    const [row] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where id = any(${ids}) and status = 'pending'`;
    expect(row!.n).toBe(32);

    await redis.start();
    await waitFor(
      async () => (await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`)[0]!.n === 32,
      60_000,
      "the 32 jobs accepted during the outage to complete",
    );
    for (const i of [...Array(16).keys(), ...Array.from({ length: 16 }, (_, k) => 100 + k)]) expect(hits.get(`/gc-${i}`)).toBe(1);
  }, 120_000);
});
