import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";

// A worker-only process answers health checks and serves its own metrics on WORKER_HEALTH_PORT.
let cluster: Cluster;
let base: string;
beforeAll(async () => {
  cluster = await startCluster({ apis: 1, workers: 0, tag: "whealth" });
  ({ base } = await cluster.startWorkerWithHealthPort());
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("the worker's health port", () => {
  test("healthz, readyz and metrics: recorder, leadership, reconciler and probe", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as any).postgres).toBe("ok");

    const api = cluster.apis[0]!;
    const flow = await api.http("POST", "/v1/flows", { name: "counted", root: { name: "echo", children: [{ name: "echo" }] } });
    expect((await api.http("GET", `/v1/flows/${flow.body.id}?wait=20`)).body.status).toBe("completed");

    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^flowd_recorder_leader 1$/m);
    expect(Number(/^flowd_recorder_batches_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(text).toMatch(/^flowd_reconciler_repairs_total\{kind="subtreesRestored"\} 0$/m);
    expect(text).toMatch(/^flowd_worker_replacements_total\{queue="flows"\} 0$/m);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  }, 60_000);
});
