import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBinary } from "../helpers/binary";
import { createTestDatabase } from "../helpers/db";
import { httpClient } from "../helpers/http";
import { runFlowd, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";
import { testPort } from "../helpers/ports";
import { startNodeWorker } from "../helpers/node-worker";

/**
 * A plain `node` process running its own BullMQ Worker on an external queue, beside the compiled
 * binary: a mixed flow completes with `job.data` exactly as posted, a flow retry still hands the
 * external parent every child's result, flowd never takes the external queue's jobs, and with only
 * `--role=api` running statuses still reach Postgres.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-external-"));
const bin = join(dir, "flowd");
const prefix = uniquePrefix("ext");
const port = testPort();
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
const procs: FlowdProcess[] = [];
let node: ReturnType<typeof Bun.spawn> | null = null;
const seen: { id: string; name: string; raw: string; children?: Record<string, unknown> }[] = [];

// The README's example worker, as a user would run it: nothing of flowd's, only bullmq.
const WORKER = `
const { Worker } = require("bullmq");
const worker = new Worker(process.env.QUEUE, async (job) => {
  const line = { id: job.id, name: job.name, raw: JSON.stringify(job.data) };
  if (job.name === "combine") line.children = await job.getChildrenValues();
  console.log(JSON.stringify(line));
  if (job.name === "resize") {
    await job.updateProgress({ done: 1 });
    return { resized: job.data.w * 2 };
  }
  if (job.name === "combine") return { got: Object.keys(line.children).length };
  throw new Error("unknown handler " + job.name);
}, { connection: { url: process.env.REDIS_URL }, prefix: process.env.PREFIX, name: "external-node" });
worker.on("ready", () => console.log(JSON.stringify({ ready: true })));
process.on("SIGTERM", () => worker.close().then(() => process.exit(0)));
`;

beforeAll(async () => {
  prepareBinary(bin);
  db = await createTestDatabase();
  env = {
    DATABASE_URL: db.url,
    REDIS_URL,
    FLOWD_PREFIX: prefix,
    PORT: String(port),
    LOG_LEVEL: "info",
    FLOWD_EXTERNAL_QUEUES: "ext",
    FLOWD_SHUTDOWN_TIMEOUT_MS: "5000",
  };
}, 120_000);

afterAll(async () => {
  node?.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.stop("SIGKILL")));
  await deletePrefix(prefix);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("your own BullMQ worker on an external queue", () => {
  test("a mixed flow, a retry, and recording with only --role=api", async () => {
    const created = await runFlowd(["token", "create", "--user", "ext"], env, { bin, cwd: dir });
    const http = httpClient(`http://127.0.0.1:${port}`, created.stdout.trim().split("\n").pop()!);
    const api = spawnFlowd(["--role=api"], env, { bin, cwd: dir });
    procs.push(api);
    const worker = spawnFlowd(["--role=worker"], env, { bin, cwd: dir });
    procs.push(worker);
    await api.waitForLine(/"flowd ready"/);
    await worker.waitForLine(/"flowd ready"/);
    node = await startNodeWorker({ dir, script: WORKER, env: { QUEUE: "ext", REDIS_URL, PREFIX: prefix }, messages: seen });

    // Keys in an order Postgres's jsonb would not keep, unicode, nesting: the worker must see these bytes.
    const posted = { w: 21, zeta: "é ✓", alpha: { list: [1, 2.5, null], "key with space": true } };
    const res = await http("POST", "/v1/flows", {
      name: "mixed",
      root: {
        name: "combine",
        queue: "ext",
        data: { step: "root" },
        children: [
          { name: "resize", queue: "ext", data: posted },
          { name: "echo", data: { x: 1 } },
          { name: "fail", data: { times: 1 }, opts: { attempts: 1 } },
          { name: "sleep", data: { ms: 4000 } },
        ],
      },
    });
    expect(res.status).toBe(201);
    const flow = res.body;
    expect(flow.root.queueName).toBe("ext");

    const settled = (id: string) =>
      waitFor(async () => {
        const r = await http("GET", `/v1/flows/${id}?wait=5`);
        return r.body.status !== "running" && r.body;
      }, 30_000, "the flow to finish");
    const failed = await settled(flow.id);
    expect(failed.status).toBe("failed");
    const [resize, echo, fail, sleeper] = failed.root.children;
    expect(resize.status).toBe("completed");
    expect(resize.result).toEqual({ resized: 42 });
    expect(resize.progress).toEqual({ done: 1 });
    const resizeSeen = seen.find((s) => s.id === resize.jobId)!;
    expect(resizeSeen.raw).toBe(JSON.stringify(posted));
    expect(echo.status).toBe("completed");
    expect(fail.status).toBe("failed");
    // The sleep still runs when its sibling's failure fails the root.
    expect(sleeper.status).toBe("active");

    // Retry: only the failed child and the root run again; the root still gets all four results,
    // the sleep's (which was not run again) from its own completion after the retry.
    expect((await http("POST", `/v1/flows/${flow.id}/retry`)).status).toBe(200);
    const done = await settled(flow.id);
    expect(done.status).toBe("completed");
    const rootRun = seen.filter((s) => s.name === "combine").pop()!;
    expect(rootRun.raw).toBe(JSON.stringify({ step: "root" }));
    const byJobId = Object.fromEntries(Object.entries(rootRun.children!).map(([k, v]) => [k.split(":").pop(), v]));
    const [, echo2, fail2, sleeper2] = done.root.children;
    expect(sleeper2.jobId).toBe(sleeper.jobId);
    expect(sleeper2.attemptsMade).toBe(1);
    expect(byJobId).toEqual({
      [resize.jobId]: { resized: 42 },
      [echo2.jobId]: { data: { x: 1 }, children: {} },
      [fail2.jobId]: { failedTimes: 1 },
      [sleeper.jobId]: { slept: 4000 },
    });
    expect(done.root.result).toEqual({ got: 4 });
    expect(seen.filter((s) => s.name === "resize")).toHaveLength(1);

    // flowd's worker never takes an external queue's job: every ext job ran in node, none elsewhere.
    const ranInNode = new Set(seen.map((s) => s.id));
    for (const job of [done.root, done.root.children[0]]) expect(ranInNode.has(job.jobId)).toBe(true);
    expect(worker.lines.some((l) => l.includes('"queue":"ext"') && l.includes("job attempt"))).toBe(false);
    const workers = (await http("GET", "/v1/workers")).body.items;
    expect(workers.find((w: any) => w.kind === "flowd").queues).not.toContain("ext");
    expect(workers.some((w: any) => w.kind === "external" && w.queues[0] === "ext")).toBe(true);

    // Names used on an external queue are listed as the users' own.
    const listed = await waitFor(async () => {
      const items = (await http("GET", "/v1/handlers")).body.items as any[];
      return items.find((h: any) => h.queue === "ext" && h.name === "combine") && items;
    }, 10_000, "external names in the registry");
    expect(listed.filter((h: any) => h.queue === "ext").map((h: any) => [h.name, h.source])).toEqual([["combine", "external"], ["resize", "external"]]);

    // Any name on the external queue; an unknown queue is refused.
    expect((await http("POST", "/v1/jobs", { name: "anything.at-all", queue: "nope" })).body.error.code).toBe("unknown_queue");
    expect((await http("POST", "/v1/jobs", { name: "resize", queue: "flows" })).body.error.code).toBe("unknown_queue");

    // Only --role=api beside the node worker: the API's standby recorder takes the lease.
    expect(await worker.stop("SIGTERM")).toBe(0);
    const single = await http("POST", "/v1/jobs", { name: "resize", queue: "ext", data: { w: 5 } });
    expect(single.status).toBe(201);
    expect(single.body.queueName).toBe("ext");
    const recorded = await waitFor(async () => {
      const r = await http("GET", `/v1/jobs/${single.body.id}?wait=5`);
      return r.body.status === "completed" && r.body;
    }, 30_000, "the single job to be recorded as completed");
    expect(recorded.result).toEqual({ resized: 10 });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(((await ready.json()) as any).status).toBe("ready");
    node!.kill("SIGTERM");
    expect(await api.stop("SIGTERM")).toBe(0);
  }, 120_000);
});
