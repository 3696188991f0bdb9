import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { connectRedis, type RedisClient } from "../../src/redis";
import { createProducer, type Producer } from "../../src/queues";
import { startEnqueuer } from "../../src/workers/enqueuer";
import { createLogger } from "../../src/log";
import { releaseForUsers } from "../../src/scheduling/limit-release";
import { markFlowUnqueued } from "../../src/db/queries/flows";
import { HOLD_DELAY_MS } from "../../src/services/flow-redis";
import { applyStatusBatch } from "../../src/db/queries/status";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * A tree's jobs held for their per-key limits go into Redis with their tree, parked far off, and a
 * release pass promotes them (src/services/flow-redis.ts, src/scheduling/release.ts). What the
 * enqueuer repairs when a process died at the wrong moment: a pass that committed but never
 * promoted, and a tree whose add failed. No worker runs: the test leaves rows and Redis as they
 * would be left.
 */
let stack: Stack;
let redis: RedisClient;
let producer: Producer;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "tree-limits" });
  redis = connectRedis(stack.config, "request", "tree-limits-test");
  producer = createProducer(redis, stack.config);
  await producer.declare(["flows"]);
});
afterAll(async () => {
  await producer?.close();
  await stack?.stop();
});

type Node = { id: string; jobId: string; status: string; waitingFor?: { reason: string }; children: Node[] };

async function createTree(key: string, limitedRoot: boolean) {
  const opts = { concurrency: { key, limit: 1 } };
  const res = await stack.http("POST", "/v1/flows", {
    name: "tree",
    root: { name: "echo", ...(limitedRoot ? { opts } : {}), children: [0, 1, 2].map((i) => ({ name: "echo", data: { i }, opts })) },
  });
  expect(res.status).toBe(201);
  return res.body as { id: string; root: Node };
}

const queue = () => producer.at(null).queue("flows");
const delayedFor = async (jobId: string) => {
  const score = await redis.zscore(`${stack.config.prefix}:flows:delayed`, jobId);
  return score === null ? null : Number(score) / 0x1000 - Date.now();
};
const userId = async () => (await stack.database.db.execute<{ id: string }>(sql`select id from users limit 1`))[0]!.id;

describe("a tree's jobs held for their limits", () => {
  test("go in parked; the create's pass promotes the first; a pass whose promote was lost is finished by the enqueuer", async () => {
    const flow = await createTree("lost", false);
    const children = flow.root.children;
    // The create's pass let the first go (promoted: waiting); the others wait parked a year off.
    expect(await queue().getJobState(children[0]!.jobId)).toBe("waiting");
    for (const c of children.slice(1)) {
      expect(await queue().getJobState(c.jobId)).toBe("delayed");
      expect(await delayedFor(c.jobId)).toBeGreaterThan(HOLD_DELAY_MS / 2);
    }
    expect(await queue().getJobState(flow.root.jobId)).toBe("waiting-children");
    // The first ends; a pass lets the second go in Postgres and its process dies before the promote.
    await stack.database.db.execute(sql`update flow_jobs set status = 'completed', finished_at = now(), event_pos = 1 where id = ${children[0]!.id}`);
    const released = await releaseForUsers(stack.database.db, [await userId()]);
    expect(released.flowJobs).toEqual([children[1]!.id]);
    await stack.database.db.execute(sql`update flow_jobs set updated_at = now() - interval '1 minute' where id = ${children[1]!.id}`);
    expect(await queue().getJobState(children[1]!.jobId)).toBe("delayed");
    const enqueuer = startEnqueuer({ db: stack.database.db, producer, log: createLogger("silent") }, { intervalMs: 100, graceMs: 0 });
    try {
      await waitFor(async () => (await queue().getJobState(children[1]!.jobId)) === "waiting", 10_000, "the released job promoted");
      // The one still held stays parked.
      expect(await queue().getJobState(children[2]!.jobId)).toBe("delayed");
      expect(await delayedFor(children[2]!.jobId)).toBeGreaterThan(HOLD_DELAY_MS / 2);
    } finally {
      await enqueuer.stop();
    }
  });

  test("a pass that let a job go before its tree's add reached Redis: the add's parking is kept pending, and the enqueuer lets it go", async () => {
    const flow = await createTree("early", false);
    const children = flow.root.children;
    await stack.database.db.execute(sql`update flow_jobs set status = 'completed', finished_at = now(), event_pos = 1 where id = ${children[0]!.id}`);
    // A worker's sweeper let the second go while the create's add was still on its way: its promote found nothing.
    expect((await releaseForUsers(stack.database.db, [await userId()])).flowJobs).toEqual([children[1]!.id]);
    // Then the add's event reaches the recorder: the job parked a year off, as BullMQ reports it.
    const parkedAt = `${Date.now()}-0`;
    await applyStatusBatch(stack.database.db, [{ table: "flow_jobs", change: { jobId: children[1]!.jobId, status: "delayed", starts: 0, streamId: parkedAt } }], new Map());
    const rowOf = async (id: string) =>
      (await stack.database.db.execute<{ status: string; waiting_for: string | null }>(sql`select status, waiting_for from flow_jobs where id = ${id}`))[0];
    // Let go but still parked: pending, which the enqueuer looks at (written delayed, nothing would, and the key's slot stayed taken).
    expect(await rowOf(children[1]!.id)).toEqual({ status: "pending", waiting_for: null });
    // The one still held keeps its hold.
    await applyStatusBatch(stack.database.db, [{ table: "flow_jobs", change: { jobId: children[2]!.jobId, status: "delayed", starts: 0, streamId: parkedAt } }], new Map());
    expect(await rowOf(children[2]!.id)).toEqual({ status: "pending", waiting_for: "concurrency" });
    await stack.database.db.execute(sql`update flow_jobs set updated_at = now() - interval '1 minute' where id = ${children[1]!.id}`);
    const enqueuer = startEnqueuer({ db: stack.database.db, producer, log: createLogger("silent") }, { intervalMs: 100, graceMs: 0 });
    try {
      await waitFor(async () => (await queue().getJobState(children[1]!.jobId)) === "waiting", 10_000, "the released job promoted");
      expect(await delayedFor(children[2]!.jobId)).toBeGreaterThan(HOLD_DELAY_MS / 2);
    } finally {
      await enqueuer.stop();
    }
  });

  test("a tree whose add failed goes in whole, its limited parent still waiting for its children and its held jobs parked", async () => {
    const flow = await createTree("unadded", true);
    const [first, ...rest] = flow.root.children;
    // As a failed add leaves it: nothing in Redis, the rows back to pending (markPending).
    await queue().remove(flow.root.jobId, { removeChildren: true });
    expect(await queue().getJobState(flow.root.jobId)).toBe("unknown");
    await markFlowUnqueued(stack.database.db, flow.id);
    await stack.database.db.execute(sql`update flow_jobs set updated_at = now() - interval '1 minute' where flow_id = ${flow.id}`);
    const [root] = await stack.database.db.execute<{ status: string; waiting_for: string }>(
      sql`select status, waiting_for from flow_jobs where id = ${flow.root.id}`,
    );
    // Held for its key, but not before its children are done: a pass must not let it go yet.
    expect(root).toEqual({ status: "waiting-children", waiting_for: "concurrency" });
    const enqueuer = startEnqueuer({ db: stack.database.db, producer, log: createLogger("silent") }, { intervalMs: 100, graceMs: 0 });
    try {
      await waitFor(async () => (await queue().getJobState(flow.root.jobId)) === "waiting-children", 10_000, "the tree added again");
    } finally {
      await enqueuer.stop();
    }
    // The child the create's pass let go goes in ready; the held ones parked.
    expect(await queue().getJobState(first!.jobId)).toBe("waiting");
    for (const c of rest) expect(await delayedFor(c.jobId)).toBeGreaterThan(HOLD_DELAY_MS / 2);
    // The parent's delay is the hold's: once its children are done, BullMQ parks it for a pass.
    const parent = await queue().getJob(flow.root.jobId);
    expect(parent!.opts.delay).toBe(HOLD_DELAY_MS);
  });
});
