import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "../helpers/process";
import { waitFor } from "../helpers/wait";
import { mentionsRedisError, startPgStack, type PgStack } from "./pg-stack";

/**
 * A plain `node` process with its own BullMQ Worker on BullMQ's Postgres backend (the CommonJS
 * build, as a user's app would require it), on an external queue of a flowd that runs on the same
 * backend: nothing of flowd's in it, only bullmq and pg.
 */
const WORKER = `
const { Worker, createPostgresBackend } = require("bullmq");
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
}, { connection: { connectionString: process.env.DATABASE_URL, schema: "bullmq" }, name: "external-node" }, createPostgresBackend);
worker.on("ready", () => console.log(JSON.stringify({ ready: true })));
worker.on("error", (err) => console.error(String(err)));
process.on("SIGTERM", () => worker.close().then(() => process.exit(0)));
`;

const dir = mkdtempSync(join(tmpdir(), "flowd-pg-external-"));
let s: PgStack;
let node: ReturnType<typeof Bun.spawn> | null = null;
const seen: { id: string; name: string; raw: string; children?: Record<string, unknown> }[] = [];

beforeAll(async () => {
  writeFileSync(join(dir, "worker.cjs"), WORKER);
  s = await startPgStack({ role: "split", env: { FLOWD_EXTERNAL_QUEUES: "ext" } });
  node = Bun.spawn(["node", join(dir, "worker.cjs")], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", NODE_PATH: join(REPO, "node_modules"), QUEUE: "ext", DATABASE_URL: s.db.url },
    stdout: "pipe",
    stderr: "inherit",
  });
  let ready = false;
  (async () => {
    let buf = "";
    for await (const chunk of node!.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.ready) ready = true;
        else seen.push(msg);
      }
    }
  })();
  await waitFor(() => ready, 20_000, "the node worker to be ready");
});
afterAll(async () => {
  node?.kill("SIGKILL");
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const settled = (path: string) =>
  waitFor(async () => {
    const r = await s.http("GET", path);
    return ["completed", "failed", "cancelled"].includes(r.body.status) && r.body;
  }, 30_000, `${path} to finish`);

describe("your own BullMQ worker on the Postgres backend, on an external queue", () => {
  test("a single job runs in node and is recorded, with its progress and data exactly as posted", async () => {
    const posted = { w: 21, zeta: "é ✓", alpha: { list: [1, 2.5, null], "key with space": true } };
    const created = await s.http("POST", "/v1/jobs", { name: "resize", queue: "ext", data: posted });
    expect(created.status).toBe(201);
    const job = await settled(`/v1/jobs/${created.body.id}`);
    expect(job.status).toBe("completed");
    expect(job.result).toEqual({ resized: 42 });
    expect(job.progress).toEqual({ done: 1 });
    expect(seen.find((l) => l.id === job.jobId)!.raw).toBe(JSON.stringify(posted));
  });

  test("a mixed flow: the external parent gets its children's results, from node and from flowd's worker", async () => {
    const created = await s.http("POST", "/v1/flows", {
      name: "mixed",
      root: { name: "combine", queue: "ext", data: { step: "root" }, children: [{ name: "resize", queue: "ext", data: { w: 3 } }, { name: "echo", data: { x: 1 } }] },
    });
    expect(created.status).toBe(201);
    const flow = await settled(`/v1/flows/${created.body.id}`);
    expect(flow.status).toBe("completed");
    const [resize, echo] = flow.root.children;
    const rootRun = seen.filter((l) => l.name === "combine").pop()!;
    // BullMQ's Postgres backend names children `queue:id`.
    expect(rootRun.children).toEqual({ [`ext:${resize.jobId}`]: { resized: 6 }, [`flows:${echo.jobId}`]: { data: { x: 1 }, children: {} } });
    expect(flow.root.result).toEqual({ got: 2 });
    // flowd's own worker never took an external job.
    expect(seen.some((l) => l.id === flow.root.jobId)).toBe(true);
  });

  test("the worker list shows the node worker as an external one", async () => {
    type Listed = { kind: string; queues: string[] };
    const items: Listed[] = await waitFor(async () => {
      const list = (await s.http("GET", "/v1/workers")).body.items as Listed[];
      return list.some((w) => w.kind === "external" && w.queues[0] === "ext") ? list : null;
    }, 15_000, "the external worker to be listed");
    expect(items.find((w) => w.kind === "flowd")!.queues).not.toContain("ext");
  });

  test("no Redis connection was tried", () => {
    expect(mentionsRedisError(s.logs())).toBe(false);
  });
});
