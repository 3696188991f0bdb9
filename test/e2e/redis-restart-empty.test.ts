import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startRedisServer } from "../helpers/redis-server";
import { useTaskStack } from "../helpers/task-stack";
import { waitFor } from "../helpers/wait";
import { testPort } from "../helpers/ports";

/**
 * A Redis of the test's own restarts without its data (no persistence) while a job waits out its
 * delay and an http task is parked on its callback (the binary in CI: an API and a worker process).
 */
const port = testPort();
let redis: Awaited<ReturnType<typeof startRedisServer>>;
beforeAll(async () => {
  redis = await startRedisServer(port);
}, 30_000);
const env = { REDIS_URL: `redis://127.0.0.1:${port}`, FLOWD_RECONCILE_INTERVAL_MS: "1000" };
const stack = useTaskStack("empty", env, env);
const { answers, http, job, createTask, settled, callback } = stack;
afterAll(async () => {
  await redis?.dispose();
});

const row = async (id: string) =>
  (await stack.cluster.database.sql<{ created: number; started: number | null }[]>`
    select (extract(epoch from created_at) * 1000)::float8 as created, (extract(epoch from started_at) * 1000)::float8 as started
    from jobs where id = ${id}`)[0]!;

describe("Redis restarts empty", () => {
  test("a delayed job still starts when it was due; a parked task keeps its one call and its callback URL", async () => {
    answers.set("/parked", () => ({ status: 202 }));
    const task = await createTask("/parked", {}, { attempts: 2 });
    await waitFor(async () => (await job(task.id)).callbackUntil !== undefined, 15_000, "parked");
    const url = stack.receiver.callsTo("/parked")[0]!.headers["flowd-callback-url"]!;
    const delayed = await http("POST", "/v1/jobs", { name: "echo", data: { n: 1 }, opts: { delay: 6_000 } });
    expect(delayed.status).toBe(201);
    const due = (await row(delayed.body.id)).created + 6_000;

    // Placed in the delay on purpose: about 3 s before the job is due.
    await Bun.sleep(Math.max(0, due - 3_000 - Date.now()));
    await redis.stop();
    await redis.start();

    const done = await http("GET", `/v1/jobs/${delayed.body.id}?wait=20`);
    expect(done.body.status).toBe("completed");
    const started = (await row(delayed.body.id)).started!;
    console.log(`after an empty restart the delayed job started ${started - due} ms after its due time`);
    expect(started - due).toBeGreaterThan(-100);
    expect(started - due).toBeLessThan(2_000);

    // The task was re-added (a new BullMQ id) and is parked again, with no second call.
    await waitFor(async () => (await job(task.id)).jobId !== task.jobId, 15_000, "the task re-added");
    expect((await job(task.id)).status).toBe("active");
    expect(stack.receiver.callsTo("/parked")).toHaveLength(1);
    const res = await callback(url, "complete", { result: { ok: 1 } });
    expect(res.status).toBe(200);
    const finished = await settled(task.id);
    expect(finished.status).toBe("completed");
    expect(finished.result).toEqual({ ok: 1 });
    expect(finished.attemptsMade).toBe(1);
    expect(stack.receiver.callsTo("/parked")).toHaveLength(1);
  }, 90_000);
});
