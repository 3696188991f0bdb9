import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";

// SPEC allows `wait` up to 60 s: the server's idle timeout must not cut such a request off.
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 0, tag: "poll" });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("a 60 s long-poll", () => {
  test("answers at 60 s with the unfinished flow, not an empty reply", async () => {
    const api = cluster.apis[0]!;
    // No worker runs, so the flow cannot finish: the wait runs its whole course.
    const created = await api.http("POST", "/v1/flows", { name: "never done", root: { name: "echo", data: {} } });
    expect(created.status).toBe(201);
    const started = performance.now();
    const res = await api.http("GET", `/v1/flows/${created.body.id}?wait=60`);
    const seconds = (performance.now() - started) / 1000;
    console.log(`long-poll answered after ${seconds.toFixed(1)} s`);
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(created.body.id);
    expect(res.body.status).toBe("running");
    expect(seconds).toBeGreaterThanOrEqual(59.5);
    expect(seconds).toBeLessThan(70);
  }, 120_000);
});
