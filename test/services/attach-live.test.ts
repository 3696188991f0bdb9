import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Queue, Worker, type Job } from "bullmq";
import { createProducer, type Producer } from "../../src/queues";
import { createRedis } from "../../src/redis";
import { enqueueRows } from "../../src/services/enqueue";
import { settleAttached } from "../../src/services/attach-live";
import type { EnqueueRow } from "../../src/services/flow-redis";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";

// A retried parent re-added over children still live in Redis, against real Redis and BullMQ
// workers: the live child is tied to the new parent (its old parent goes), and one that failed
// before the tie fails the new parent instead of leaving it waiting for ever.
const prefix = uniquePrefix("attach");
const QUEUE = "flows";
const redis = createRedis(REDIS_URL, "request", "attach-test");
let producer: Producer;
const workers: Worker[] = [];
const key = (jobId: string) => `${prefix}:${QUEUE}:${jobId}`;

beforeAll(() => {
  producer = createProducer(redis, { prefix, eventStreamMaxLen: 10_000, shards: 1 });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await producer.close();
  redis.disconnect();
  await deletePrefix(prefix);
});

/** A worker: `leaf` jobs return their id or throw when told to, parents return their children's values. */
function startWorker() {
  const worker = new Worker(
    QUEUE,
    async (job: Job) => {
      if (job.name === "parent") return job.getChildrenValues();
      if (job.data.fail) throw new Error("leaf failed");
      return { leaf: job.id };
    },
    { connection: { url: REDIS_URL }, prefix, concurrency: 4 },
  );
  workers.push(worker);
  return worker;
}

const row = (id: string, jobId: string, parentId: string | null, status: string, data: Record<string, unknown> = {}): EnqueueRow => ({
  id,
  jobId,
  parentId,
  name: parentId ? "leaf" : "parent",
  queueName: QUEUE,
  shard: producer.home,
  data,
  opts: {},
  status,
  result: null,
  attemptsMade: 0,
  attemptsBase: 0,
  readyAt: null,
  createdAt: new Date(),
  parkedUntil: null,
});

/** The first run of a flow, in Redis: a parent over one leaf per id. */
async function firstRun(parent: string, leaves: { id: string; data?: Record<string, unknown> }[]) {
  await producer.at(producer.home).flowProducer.add({
    name: "parent",
    queueName: QUEUE,
    opts: { jobId: parent },
    children: leaves.map((l) => ({ name: "leaf", queueName: QUEUE, data: l.data ?? {}, opts: { jobId: l.id, failParentOnFailure: true } })),
  });
}

const stateOf = (jobId: string) => new Queue(QUEUE, { connection: redis, prefix }).getJobState(jobId);

describe("tying live children to a re-added parent", () => {
  test("a live child moves to the new parent, its old parent goes, and its completion releases the new one", async () => {
    await firstRun("p1", [{ id: "live1" }]);
    // The retry: the parent again under a new id, with a new child and the live one attached.
    await enqueueRows({ producer }, [row("p1", "p1-1", null, "pending"), row("live1", "live1", "p1", "waiting"), row("n1", "n1-1", "p1", "pending")]);
    expect(await redis.exists(key("p1"))).toBe(0);
    expect(await redis.hget(key("live1"), "parentKey")).toBe(key("p1-1"));
    expect((await redis.smembers(`${key("p1-1")}:dependencies`)).sort()).toEqual([key("live1"), key("n1-1")]);
    startWorker();
    await waitFor(async () => (await stateOf("p1-1")) === "completed", 10_000, "the new parent completed");
    const values = JSON.parse((await redis.hget(key("p1-1"), "returnvalue"))!);
    expect(values).toEqual({ [key("live1")]: { leaf: "live1" }, [key("n1-1")]: { leaf: "n1-1" } });
  });

  test("a child that failed before the tie (Postgres had not heard yet) fails the new parent once its other children are done", async () => {
    await firstRun("p2", [{ id: "dead2", data: { fail: true } }]);
    await waitFor(async () => (await stateOf("p2")) === "failed", 10_000, "the first run failed");
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await enqueueRows({ producer }, [row("p2", "p2-1", null, "pending"), row("dead2", "dead2", "p2", "active"), row("n2", "n2-1", "p2", "pending")]);
    // Untied, and the new parent carries BullMQ's deferred failure; it still waits for its new child.
    expect(await redis.smembers(`${key("p2-1")}:dependencies`)).toEqual([key("n2-1")]);
    expect(await redis.hget(key("p2-1"), "defa")).toBe(`child ${key("dead2")} failed`);
    expect(await stateOf("p2-1")).toBe("waiting-children");
    startWorker();
    await waitFor(async () => (await stateOf("p2-1")) === "failed", 10_000, "the new parent failed");
    expect(await stateOf("n2-1")).toBe("completed");
    expect(await redis.hget(key("p2-1"), "failedReason")).toBe(`child ${key("dead2")} failed`);
  });

  test("a parent removed between the check and the mark (a cancel, a delete) is not brought back as a one-field hash", async () => {
    await firstRun("p3", [{ id: "dead3", data: { fail: true } }]);
    startWorker();
    await waitFor(async () => (await stateOf("p3")) === "failed", 10_000, "the first run failed");
    await Promise.all(workers.splice(0).map((w) => w.close()));
    // The window: the check saw the tie (the dependency is still listed) but the parent's hash is gone.
    await redis.sadd(`${key("ghost3")}:dependencies`, key("dead3"));
    const node = (id: string) => ({ name: "leaf", queueName: QUEUE, opts: { jobId: id, failParentOnFailure: true } });
    await settleAttached(producer, producer.home, [{ child: node("dead3"), parent: node("ghost3") }]);
    expect(await redis.exists(key("ghost3"))).toBe(0);
    await redis.del(`${key("ghost3")}:dependencies`);
  });
});
