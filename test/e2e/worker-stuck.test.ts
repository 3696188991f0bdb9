import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import type { FlowdProcess } from "../helpers/process";
import { startFreezableProxy } from "../helpers/tcp-proxy";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";

// A worker whose Redis connections go silent without closing (what a dropped NAT entry does): the
// worker raises no error and would wait forever. Its probe must notice and replace it.
let cluster: Cluster;
let proxy: Awaited<ReturnType<typeof startFreezableProxy>>;
let worker: FlowdProcess;
beforeAll(async () => {
  const target = new URL(REDIS_URL);
  proxy = await startFreezableProxy({ host: target.hostname, port: Number(target.port || 6379) });
  cluster = await startCluster({ apis: 1, workers: 0, tag: "stuck" });
  worker = await cluster.startWorker({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, FLOWD_WORKER_STUCK_MS: "2000" });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  await proxy?.stop();
});

describe("a worker whose connections went silent", () => {
  test("is replaced by its probe, and the waiting flow completes", async () => {
    const api = cluster.apis[0]!;
    const before = await api.http("POST", "/v1/flows", { name: "before", root: { name: "echo", data: { n: 1 } } });
    expect((await api.http("GET", `/v1/flows/${before.body.id}?wait=20`)).body.status).toBe("completed");

    // Both of the flow queue worker's connections (its own and BullMQ's blocking one) go silent.
    expect(proxy.freeze("flowd-worker-flows")).toBeGreaterThanOrEqual(1);
    const frozenAt = Date.now();
    const during = await api.http("POST", "/v1/flows", { name: "during", root: { name: "echo", data: { n: 2 } } });
    expect(during.status).toBe(201);

    const done = await api.http("GET", `/v1/flows/${during.body.id}?wait=30`);
    expect(done.body.status).toBe("completed");
    expect(done.body.root.result).toEqual({ data: { n: 2 }, children: {} });
    console.log(`flow completed ${Date.now() - frozenAt} ms after the worker's connections went silent`);
    const line = await worker.waitForLine(/worker took no job while one was waiting; replacing it/, 1_000);
    expect(JSON.parse(line)).toMatchObject({ queue: "flows", jobId: during.body.root.jobId });
  }, 60_000);

  test("is replaced even while another process keeps taking the waiting jobs one by one", async () => {
    const api = cluster.apis[0]!;
    // A healthy worker that takes one job at a time: the head of the queue changes every 400 ms.
    await cluster.startWorker({ WORKER_CONCURRENCY: "1" });
    const replaced = () => worker.lines.filter((l) => l.includes("worker took no job while one was waiting")).length;
    const before = replaced();
    expect(proxy.freeze("flowd-worker-flows")).toBeGreaterThanOrEqual(1);
    const frozenAt = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) {
      const res = await api.http("POST", "/v1/flows", { name: `backlog ${i}`, root: { name: "sleep", data: { ms: 400 } } });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    await waitFor(async () => replaced() > before, 15_000, "the silent worker to be replaced");
    console.log(`replaced ${Date.now() - frozenAt} ms after its connections went silent, beside a busy healthy worker`);
    for (const id of ids) expect((await api.http("GET", `/v1/flows/${id}?wait=30`)).body.status).toBe("completed");
  }, 60_000);
});
