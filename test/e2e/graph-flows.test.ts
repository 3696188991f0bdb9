import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster, type Cluster } from "../helpers/cluster";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";
import { startNodeWorker } from "../helpers/node-worker";

/**
 * Graph flows (`jobs` with `dependsOn`) with the API and a worker as separate processes (the
 * compiled binary under FLOWD_BIN): a job runs once everything it depends on completed, with their
 * results by key; a failure cancels exactly what can no longer run; cancel and long-polls work as
 * on trees; a worker killed while releases happen loses nothing.
 */
let c: Cluster;
const dir = mkdtempSync(join(tmpdir(), "flowd-graph-"));
let node: ReturnType<typeof Bun.spawn> | null = null;

// A user's own worker: nothing of flowd's, only bullmq (its CommonJS build, as a plain node script).
const WORKER = `
const { Worker } = require("bullmq");
const worker = new Worker("ext", async (job) => {
  if (job.name === "double") return { doubled: job.data.n * 2 };
  const values = await job.getChildrenValues();
  console.log(JSON.stringify({ id: job.id, values }));
  return { got: Object.keys(values).length };
}, { connection: { url: process.env.REDIS_URL }, prefix: process.env.PREFIX });
worker.on("ready", () => console.log(JSON.stringify({ ready: true })));
`;

beforeAll(async () => {
  c = await startCluster({ tag: "graph", env: { FLOWD_EXTERNAL_QUEUES: "ext", FLOWD_LOCK_DURATION_MS: "3000", FLOWD_STALLED_INTERVAL_MS: "1000" } });
}, 120_000);
afterAll(async () => {
  node?.kill("SIGKILL");
  await c?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

type Job = { key: string; name: string; queue?: string; data?: Record<string, unknown>; dependsOn?: string[]; opts?: Record<string, unknown> };
const http = () => c.apis[0]!.http;

async function create(jobs: Job[], name = "g") {
  const res = await http()("POST", "/v1/flows", { name, jobs });
  expect(res.status).toBe(201);
  return res.body as { id: string; jobs: { key: string; status: string; dependsOn: string[] }[] };
}

async function finished(id: string, ms = 60_000) {
  return waitFor(async () => {
    const res = await http()("GET", `/v1/flows/${id}?wait=5`);
    if (res.status !== 200) throw new Error(`GET /v1/flows/${id}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    return res.body.status !== "running" ? res.body : null;
  }, ms, `flow ${id} to finish`);
}

/** The rows' timings: every job started after each of its dependencies finished. */
async function timings(flowId: string) {
  return c.database.db.execute<{ id: string; key: string; status: string; depends_on: string[] | null; started_at: Date | null; finished_at: Date | null; attempts_made: number }>(
    sql`select id, key, status, depends_on, started_at, finished_at, attempts_made from flow_jobs where flow_id = ${flowId}`,
  );
}

function checkOrder(rows: Awaited<ReturnType<typeof timings>>) {
  const byId = new Map(rows.map((r) => [r.id, r]));
  let edges = 0;
  for (const r of rows)
    for (const dep of r.depends_on ?? []) {
      const d = byId.get(dep)!;
      expect(new Date(r.started_at!).getTime()).toBeGreaterThanOrEqual(new Date(d.finished_at!).getTime());
      edges++;
    }
  return edges;
}

/** `layers` × `width` echo jobs; each job below the first layer depends on 3 of the layer above. */
function layered(layers: number, width: number): Job[] {
  const jobs: Job[] = [];
  for (let l = 0; l < layers; l++)
    for (let i = 0; i < width; i++)
      // sleep, not echo: echo's result holds its dependencies' results, which would grow 3× per layer.
      jobs.push({ key: `L${l}.${i}`, name: "sleep", data: { ms: 1 }, ...(l > 0 ? { dependsOn: [0, 1, 2].map((k) => `L${l - 1}.${(i + k * 7) % width}`) } : {}) });
  return jobs;
}

describe("graph flows", () => {
  test("a diamond: D gets B's and C's results by key, after both", async () => {
    const flow = await create([
      { key: "A", name: "echo", data: { v: "a" } },
      { key: "B", name: "echo", data: { v: "b" }, dependsOn: ["A"] },
      { key: "C", name: "echo", data: { v: "c" }, dependsOn: ["A"] },
      { key: "D", name: "echo", data: { v: "d" }, dependsOn: ["B", "C"] },
    ]);
    expect(flow.jobs.map((j) => [j.key, j.status, j.dependsOn])).toEqual([
      ["A", "waiting", []],
      ["B", "pending", ["A"]],
      ["C", "pending", ["A"]],
      ["D", "pending", ["B", "C"]],
    ]);
    const done = await finished(flow.id);
    expect(done.status).toBe("completed");
    expect(done.root).toBeUndefined();
    const d = done.jobs.find((j: { key: string }) => j.key === "D");
    expect(d.result.parents.B).toEqual({ data: { v: "b" }, parents: { A: { data: { v: "a" }, children: {} } } });
    expect(d.result.parents.C.data).toEqual({ v: "c" });
    expect(Object.keys(d.result.parents).sort()).toEqual(["B", "C"]);
    expect(d.key).toBe("D");
    checkOrder(await timings(flow.id));
    // Events carry the job's key.
    const events = await c.database.db.execute<{ data: { key?: string } }>(sql`select data from events where flow_id = ${flow.id} and type = 'job.updated'`);
    expect(new Set(events.map((e) => e.data.key))).toEqual(new Set(["A", "B", "C", "D"]));
  }, 90_000);

  test("a failed middle job cancels exactly its descendants, naming it; the other branch completes; the flow fails; retry completes it", async () => {
    const flow = await create([
      { key: "a", name: "echo" },
      // Fails its first attempt only: the retry's run succeeds.
      { key: "bad", name: "fail", data: { times: 1 }, dependsOn: ["a"] },
      { key: "ok", name: "echo", dependsOn: ["a"] },
      { key: "after-bad", name: "echo", dependsOn: ["bad", "ok"] },
      { key: "deeper", name: "echo", dependsOn: ["after-bad"] },
      { key: "after-ok", name: "echo", dependsOn: ["ok"] },
    ]);
    const done = await finished(flow.id);
    expect(done.status).toBe("failed");
    const by = Object.fromEntries(done.jobs.map((j: { key: string }) => [j.key, j]));
    expect(by.a.status).toBe("completed");
    expect(by.bad.status).toBe("failed");
    expect(by.ok.status).toBe("completed");
    expect(by["after-ok"].status).toBe("completed");
    for (const k of ["after-bad", "deeper"]) {
      expect(by[k].status).toBe("cancelled");
      expect(by[k].error.message).toBe("dependency bad failed");
    }
    // Retry re-runs the failed job and what it cancelled, keeping every completed result.
    const retry = await http()("POST", `/v1/flows/${flow.id}/retry`);
    expect(retry.status).toBe(200);
    expect(retry.body.status).toBe("running");
    const again = await finished(flow.id);
    expect(again.status).toBe("completed");
    const after = Object.fromEntries(again.jobs.map((j: { key: string }) => [j.key, j]));
    for (const k of ["a", "ok", "after-ok"]) {
      expect(after[k].jobId).toBe(by[k].jobId);
      expect(after[k].attemptsMade).toBe(1);
      expect(after[k].result).toEqual(by[k].result);
    }
    for (const k of ["bad", "after-bad", "deeper"]) expect(after[k].jobId).not.toBe(by[k].jobId);
    expect(Object.keys(after["after-bad"].result.parents).sort()).toEqual(["bad", "ok"]);
    expect(after["after-bad"].result.parents.ok).toEqual(by.ok.result);
    checkOrder(await timings(flow.id));
  }, 90_000);

  test("a failure under ignoreDependencyOnFailure lets its dependents run; the flow still fails", async () => {
    const flow = await create([
      { key: "soft", name: "fail", opts: { ignoreDependencyOnFailure: true } },
      { key: "next", name: "echo", dependsOn: ["soft"] },
    ]);
    const done = await finished(flow.id);
    expect(done.jobs.map((j: { key: string; status: string }) => [j.key, j.status])).toEqual([["soft", "failed"], ["next", "completed"]]);
    expect(done.status).toBe("failed");
  }, 60_000);

  test("cancel ends the held jobs too; a long-poll answers when it does", async () => {
    const flow = await create([
      { key: "slow", name: "sleep", data: { ms: 20_000 } },
      { key: "then", name: "echo", dependsOn: ["slow"] },
    ]);
    await waitFor(async () => (await http()("GET", `/v1/flows/${flow.id}`)).body.jobs[0].status === "active", 20_000, "slow to start");
    const poll = http()("GET", `/v1/flows/${flow.id}?wait=20`);
    const cancel = await http()("POST", `/v1/flows/${flow.id}/cancel`);
    expect(cancel.status).toBe(200);
    const polled = await poll;
    expect(polled.body.status).toBe("cancelled");
    expect(polled.body.jobs.map((j: { status: string }) => j.status)).toEqual(["cancelled", "cancelled"]);
    const del = await http()("DELETE", `/v1/flows/${flow.id}`);
    expect(del.status).toBe(204);
  }, 60_000);

  test("your own BullMQ worker runs a graph job with two dependencies and sees both results from getChildrenValues()", async () => {
    const lines: { id?: string; values?: Record<string, unknown> }[] = [];
    node = await startNodeWorker({ dir, script: WORKER, env: { REDIS_URL, PREFIX: c.prefix }, messages: lines });
    const flow = await create([
      { key: "mine", name: "echo", data: { v: 1 } },
      { key: "theirs", name: "double", queue: "ext", data: { n: 21 } },
      { key: "join", name: "combine", queue: "ext", dependsOn: ["mine", "theirs"] },
    ]);
    const done = await finished(flow.id);
    expect(done.status).toBe("completed");
    const [mine, theirs, join_] = done.jobs;
    expect(join_.result).toEqual({ got: 2 });
    const seen = lines.find((l) => l.id === join_.jobId)!;
    expect(seen.values).toEqual({
      [`${c.prefix}:flows:${mine.jobId}`]: { data: { v: 1 }, children: {} },
      [`${c.prefix}:ext:${theirs.jobId}`]: { doubled: 42 },
    });
  }, 60_000);

  test("a 10 × 100 layered graph completes with every dependency respected, through a worker killed -9 mid-way", async () => {
    const flow = await create(layered(Number(process.env.GRAPH_LAYERS ?? 10), 100), "layers");
    // Kill the worker once the third layer has started: releases are under way.
    await waitFor(async () => {
      const [row] = await c.database.db.execute<{ n: number }>(
        sql`select count(*)::int as n from flow_jobs where flow_id = ${flow.id} and key like 'L2.%' and status <> 'pending'`,
      );
      return row!.n > 0;
    }, 60_000, "layer 2 to be released");
    await c.workers[0]!.stop("SIGKILL");
    c.workers.splice(0, 1);
    // The kill came while the flow ran: most of it is left for the new worker's releases.
    const [left] = await c.database.db.execute<{ n: number }>(
      sql`select count(*)::int as n from flow_jobs where flow_id = ${flow.id} and status <> 'completed'`,
    );
    expect(left!.n).toBeGreaterThan(300);
    await c.startWorker();
    const done = await finished(flow.id, 180_000);
    expect(done.status).toBe("completed");
    const rows = await timings(flow.id);
    expect(rows.length).toBe(Number(process.env.GRAPH_LAYERS ?? 10) * 100);
    expect(rows.every((r) => r.status === "completed")).toBe(true);
    expect(checkOrder(rows)).toBe((rows.length - 100) * 3);
    // Nothing was added twice: a job that ran again is one the killed worker held when it died.
    const reran = rows.filter((r) => r.attempts_made > 1);
    expect(reran.length).toBeLessThanOrEqual(16);
  }, 240_000);
});
