import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * A join whose end no recorder batch saw (the park committed while the last awaited job's end was
 * being recorded, and the parking worker died before its own second look): the enqueuer wakes it.
 * No worker runs: the test sets the rows and Redis as they would be left.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "spawn-wake" });
});
afterAll(async () => await stack?.stop());

describe("a join nothing woke", () => {
  test("the enqueuer ends the wait and promotes the parked job; a join not over is left parked", async () => {
    const { connectRedis } = await import("../../src/redis");
    const { createProducer } = await import("../../src/queues");
    const { startEnqueuer } = await import("../../src/workers/enqueuer");
    const { createLogger } = await import("../../src/log");
    const db = stack.database.db;
    const res = await stack.http("POST", "/v1/flows", {
      name: "join",
      jobs: [
        { key: "waiter", name: "echo" },
        { key: "other", name: "echo" },
        { key: "done", name: "echo" },
        { key: "busy", name: "echo" },
      ],
    });
    expect(res.status).toBe(201);
    const [waiter, other, done, busy] = res.body.jobs as { id: string; jobId: string }[];
    const redis = connectRedis(stack.config, "request", "spawn-wake-test");
    const producer = createProducer(redis, stack.config);
    await producer.declare(["flows"]);
    const queue = producer.at(null).queue("flows");
    // Both parked as a join leaves them: BullMQ's delayed set, the row active and waiting.
    for (const [job, on] of [[waiter!, done!], [other!, busy!]] as const) {
      await queue.remove(job.jobId);
      await queue.add("echo", {}, { jobId: job.jobId, delay: 600_000 });
      await db.execute(sql`update flow_jobs set status = 'active', waiting_for = 'children', waits_on = ${JSON.stringify([on.id])}::jsonb,
        parked_until = now() + interval '10 minutes', updated_at = now() - interval '1 minute' where id = ${job.id}`);
    }
    await db.execute(sql`update flow_jobs set status = 'completed', result = '{"ok":1}', event_pos = 1 where id = ${done!.id}`);
    await db.execute(sql`update flow_jobs set status = 'active', event_pos = 1 where id = ${busy!.id}`);
    expect(await queue.getJobState(waiter!.jobId)).toBe("delayed");
    const enqueuer = startEnqueuer({ db, producer, log: createLogger("silent") }, { intervalMs: 100, graceMs: 0 });
    try {
      await waitFor(async () => (await queue.getJobState(waiter!.jobId)) === "waiting", 10_000, "the waiter to be woken");
      const rows = await db.execute<{ id: string; waiting_for: string | null; parked_until: Date | null; status: string }>(
        sql`select id, waiting_for, parked_until, status from flow_jobs where id in (${waiter!.id}, ${other!.id}) order by id = ${waiter!.id} desc`,
      );
      // Woken: no longer waiting, still parked for the recorder (active through its wake-up) until it finishes.
      expect(rows[0]).toMatchObject({ waiting_for: null, status: "active" });
      expect(rows[0]!.parked_until).not.toBeNull();
      // Its join is not over: left alone.
      expect(rows[1]).toMatchObject({ waiting_for: "children", status: "active" });
      expect(await queue.getJobState(other!.jobId)).toBe("delayed");
    } finally {
      await enqueuer.stop();
      await producer.close();
      redis.disconnect();
    }
  });
});
