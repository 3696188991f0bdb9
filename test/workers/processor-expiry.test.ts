import { describe, expect, test } from "bun:test";
import { UnrecoverableError, type Job } from "bullmq";
import { createProcessor } from "../../src/workers/processor";

/**
 * A worker's check at start: a job first started after its expireAfterMs is failed unrun, with the
 * reason the recorder knows as code `expired`; a retry, or a job started in time, runs.
 */
const processor = createProcessor({ prefix: "p", allowPrivateUrls: false });
const job = (over: Partial<Job> & { opts?: Record<string, unknown> }) =>
  ({
    id: "j1",
    name: "echo",
    queueName: "jobs",
    data: { x: 1 },
    attemptsMade: 0,
    attemptsStarted: 1,
    timestamp: Date.now(),
    log: async () => 0,
    updateProgress: async () => {},
    ...over,
    opts: { flowd: {}, ...over.opts },
  }) as unknown as Job;

describe("the processor's expiry check", () => {
  test("a first start past expireAfterMs fails unrun, without further attempts", async () => {
    const err = await processor(job({ timestamp: Date.now() - 1_000, opts: { expireAfterMs: 500 } })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UnrecoverableError);
    expect((err as Error).message).toStartWith("expired: the job did not start within its expireAfterMs (500 ms)");
  });

  test("a delay counts from when it ends", async () => {
    expect(await processor(job({ timestamp: Date.now() - 1_000, opts: { expireAfterMs: 500, delay: 900 } }))).toMatchObject({ data: { x: 1 } });
  });

  test("a job started in time, or a retry, runs", async () => {
    expect(await processor(job({ opts: { expireAfterMs: 500 } }))).toMatchObject({ data: { x: 1 } });
    expect(await processor(job({ timestamp: Date.now() - 1_000, attemptsMade: 1, attemptsStarted: 2, opts: { expireAfterMs: 500 } }))).toMatchObject({
      data: { x: 1 },
    });
  });
});
