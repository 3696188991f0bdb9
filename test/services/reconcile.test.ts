import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../../src/log";
import { Worker } from "bullmq";
import { createProducer } from "../../src/queues";
import { createRedis } from "../../src/redis";
import { reconcileLostJobs } from "../../src/services/reconcile";
import { startStatusRecorder } from "../../src/workers/status-recorder";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// The reconciler's decisions for a flow that lost some of its jobs, with no worker running: the
// jobs sit in Redis exactly where the test puts them, and the real recorder mirrors them.
let stack: Stack;
let recorder: ReturnType<typeof startStatusRecorder>;
const redis = createRedis(process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379", "request", "test-reconcile");
const recorderRedis = createRedis(process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379", "blocking", "test-recorder");
const log = createLogger("silent");
let producer: ReturnType<typeof createProducer>;

beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "rec" });
  producer = createProducer(redis, stack.config);
  recorder = startStatusRecorder({ db: stack.database.db, redis: recorderRedis, prefix: stack.config.prefix, queues: [{ name: "flows", table: "flow_jobs" }], log });
});
afterAll(async () => {
  await recorder.stop();
  await producer.close();
  redis.disconnect();
  recorderRedis.disconnect();
  await stack.stop();
});

const reconcile = () => reconcileLostJobs({ db: stack.database.db, producer, log, config: stack.config }, 0);
const key = (jobId: string) => `${stack.config.prefix}:flows:${jobId}`;

/** A root waiting for two children, both waiting in Redis and recorded as such. */
async function waitingFlow() {
  const created = await stack.http("POST", "/v1/flows", {
    name: "two",
    root: { name: "echo", data: {}, children: [{ name: "echo", data: { n: 1 } }, { name: "echo", data: { n: 2 } }] },
  });
  expect(created.status).toBe(201);
  await waitFor(async () => {
    const flow = (await stack.http("GET", `/v1/flows/${created.body.id}`)).body;
    return flow.root.status === "waiting-children" && flow.root.children.every((c: { status: string }) => c.status === "waiting");
  }, 10_000, "the flow recorded as queued");
  const root = created.body.root.jobId as string;
  const [one, two] = (created.body.root.children as { jobId: string }[]).map((c) => c.jobId);
  return { root, one: one!, two: two! };
}

describe("a flow that lost some of its jobs", () => {
  test("a lost child its parent still waits for is added again once, under its own id", async () => {
    const { root, one } = await waitingFlow();
    // Only the job's hash goes: its id stays in the wait list, where a second copy would run twice.
    await redis.del(key(one));

    expect(await reconcile()).toEqual({ flowsRebuilt: 0, subtreesRestored: 1, jobsRequeued: 0, stranded: 0, finishedRecorded: 0 });
    expect(await redis.hget(key(one), "parentKey")).toBe(key(root));
    expect(await redis.sismember(`${key(root)}:dependencies`, key(one))).toBe(1);
    const waiting = await redis.lrange(`${stack.config.prefix}:flows:wait`, 0, -1);
    expect(waiting.filter((id) => id === one)).toHaveLength(1);
    // Nothing is lost any more: a second pass has nothing to do.
    expect(await reconcile()).toEqual({ flowsRebuilt: 0, subtreesRestored: 0, jobsRequeued: 0, stranded: 0, finishedRecorded: 0 });
  });

  test("a lost child its parent no longer waits for ends as failed, saying why, once", async () => {
    const { root, two } = await waitingFlow();
    await redis.del(key(two));
    await redis.srem(`${key(root)}:dependencies`, key(two));

    expect(await reconcile()).toEqual({ flowsRebuilt: 0, subtreesRestored: 0, jobsRequeued: 0, stranded: 1, finishedRecorded: 0 });
    expect(await redis.exists(key(two))).toBe(0);
    const [row] = await stack.database.sql<{ status: string; error: { message: string } }[]>`select status, error from flow_jobs where job_id = ${two}`;
    expect(row!.status).toBe("failed");
    expect(row!.error.message).toContain("retry the flow");
    expect(await reconcile()).toEqual({ flowsRebuilt: 0, subtreesRestored: 0, jobsRequeued: 0, stranded: 0, finishedRecorded: 0 });
  });

  test("a lost job a worker still holds the lock of is left for a later pass", async () => {
    const { one } = await waitingFlow();
    await redis.del(key(one));
    await redis.set(`${key(one)}:lock`, "some-worker", "PX", 60_000);
    expect(await reconcile()).toEqual({ flowsRebuilt: 0, subtreesRestored: 0, jobsRequeued: 0, stranded: 0, finishedRecorded: 0 });
    expect(await redis.exists(key(one))).toBe(0);
    await redis.del(`${key(one)}:lock`);
    expect((await reconcile()).subtreesRestored).toBe(1);
    expect(await redis.exists(key(one))).toBe(1);
  });
});

describe("a job Redis finished whose events were never recorded", () => {
  test("the reconciler writes Redis's outcome to the row, with its result, once", async () => {
    const { one } = await waitingFlow();
    // No recorder from here on: the completion below reaches the stream and nobody reads it.
    await recorder.stop();
    const worker = new Worker("flows", null, { connection: recorderRedis.duplicate(), prefix: stack.config.prefix });
    try {
      let job = await worker.getNextJob("tok");
      while (job && job.id !== one) {
        await job.moveToDelayed(Date.now() + 60_000, "tok");
        job = await worker.getNextJob("tok");
      }
      expect(job?.id).toBe(one);
      await job!.moveToCompleted({ done: 1 }, "tok", false);
    } finally {
      await worker.close();
    }
    const before = await stack.database.sql<{ status: string }[]>`select status from flow_jobs where job_id = ${one}`;
    expect(before[0]!.status).toBe("waiting");

    const repairs = await reconcile();
    expect(repairs.finishedRecorded).toBe(1);
    expect(repairs.subtreesRestored + repairs.flowsRebuilt + repairs.stranded).toBe(0);
    const [row] = await stack.database.sql<{ status: string; result: unknown; attempts_made: number }[]>`
      select status, result, attempts_made from flow_jobs where job_id = ${one}`;
    expect(row).toEqual({ status: "completed", result: { done: 1 }, attempts_made: 1 });
    expect((await reconcile()).finishedRecorded).toBe(0);
  });
});
