import { afterAll, beforeAll, expect } from "bun:test";
import { startCluster, type ApiProcess, type Cluster } from "./cluster";
import { startTaskReceiver, type Answer, type ReceivedCall } from "./task-receiver";
import { waitFor } from "./wait";

/**
 * The stack the http task tests share, set up around a test file: an API process, a worker process
 * whose callback URLs point at that API, and a local service answering each path as `answers` says
 * (200 by default). Returns the helpers the tests call a service's way: create a task, read it,
 * wait for it to finish, call a callback URL with no token.
 */
export function useTaskStack(tag: string, workerEnv: Record<string, string>, env: Record<string, string> = {}) {
  const answers = new Map<string, (n: number, call: ReceivedCall) => Answer>();
  let receiver!: ReturnType<typeof startTaskReceiver>;
  let cluster!: Cluster;
  let api!: ApiProcess;
  beforeAll(async () => {
    receiver = startTaskReceiver((path, n, call) => answers.get(path)?.(n, call) ?? { status: 200, body: { ok: true } });
    cluster = await startCluster({ apis: 0, workers: 0, tag, env });
    api = await cluster.startApi();
    await cluster.startWorker({ ...workerEnv, FLOWD_PUBLIC_URL: api.url });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    receiver?.stop();
  });

  const http: ApiProcess["http"] = (...args) => api.http(...args);
  const job = async (id: string) => (await http("GET", `/v1/jobs/${id}`)).body;
  return {
    answers,
    get receiver() {
      return receiver;
    },
    get cluster() {
      return cluster;
    },
    get api() {
      return api;
    },
    http,
    job,
    async createTask(path: string, extra: Record<string, unknown> = {}, opts?: Record<string, unknown>) {
      const res = await http("POST", "/v1/jobs", { name: "http", data: { url: receiver.url(path), method: "POST", body: { path }, ...extra }, ...(opts ? { opts } : {}) });
      expect(res.status).toBe(201);
      return res.body as { id: string; jobId: string };
    },
    settled: (id: string, ms = 20_000) =>
      waitFor(async () => ["completed", "failed", "cancelled"].includes((await job(id)).status) && job(id), ms, `job ${id} finished`),
    /** Calls a callback URL the way a service would: no token, JSON body. */
    async callback(url: string, action: string, body?: unknown, raw?: string) {
      const res = await fetch(`${url}/${action}`, {
        method: "POST",
        headers: body === undefined && raw === undefined ? {} : { "content-type": "application/json" },
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
      return { status: res.status, body: (await res.json().catch(() => null)) as any };
    },
  };
}
