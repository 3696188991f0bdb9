import { describe, expect, test } from "bun:test";
import { UnrecoverableError, type Job, type Processor } from "bullmq";
import { createLogger } from "../../src/log";
import { createMetrics } from "../../src/metrics";
import { observeJobs } from "../../src/workers/job-observer";

// The observer around a processor, with fake jobs: what it logs and counts per attempt.
function setup(processor: Processor) {
  const lines: Record<string, any>[] = [];
  const log = createLogger("debug", { role: "worker" }, (l) => lines.push(JSON.parse(l)));
  const metrics = createMetrics();
  return { run: observeJobs("flows", processor, { log, metrics }), lines, metrics };
}
const job = (over: Partial<Job> = {}) =>
  ({ id: "j1", name: "fail", timestamp: Date.now() - 50, attemptsMade: 0, opts: { attempts: 2 }, ...over }) as unknown as Job;
const value = async (metrics: ReturnType<typeof createMetrics>, name: string, labels: string) =>
  Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(await metrics.registry.metrics())?.[1] ?? "NaN");

describe("observeJobs", () => {
  test("a failed attempt: a warn line with job, queue, handler, attempt and message; lines inside carry the job id", async () => {
    const { run, lines, metrics } = setup(async () => {
      createLogger("debug", {}, (l) => lines.push(JSON.parse(l))).info("handler says hi");
      throw new Error("it broke");
    });
    await expect(run(job(), "token")).rejects.toThrow("it broke");
    expect(lines[0]).toMatchObject({ msg: "handler says hi", jobId: "j1" });
    expect(lines[1]).toMatchObject({ level: "warn", msg: "job attempt failed", jobId: "j1", queue: "flows", handler: "fail", attempt: 1, final: false, error: "it broke", role: "worker" });
    expect(await value(metrics, "flowd_job_attempts_failed_total", 'queue="flows",handler="fail"')).toBe(1);
    // Not final yet: one attempt is left.
    expect(await metrics.registry.metrics()).not.toMatch(/^flowd_jobs_failed_total\{/m);

    await expect(run(job({ attemptsMade: 1 }), "token")).rejects.toThrow("it broke");
    expect(lines.at(-1)).toMatchObject({ attempt: 2, final: true });
    expect(await value(metrics, "flowd_jobs_failed_total", 'queue="flows",handler="fail"')).toBe(1);
  });

  test("a permanent failure is final on its first attempt", async () => {
    const { run, lines, metrics } = setup(async () => {
      throw new UnrecoverableError("never");
    });
    await expect(run(job(), "token")).rejects.toThrow("never");
    expect(lines.at(-1)).toMatchObject({ attempt: 1, final: true });
    expect(await value(metrics, "flowd_jobs_failed_total", 'queue="flows",handler="fail"')).toBe(1);
  });

  test("a completed job: run time, wait and completed count; no warn line", async () => {
    const { run, lines, metrics } = setup(async () => ({ ok: true }));
    expect(await run(job({ name: "echo" }), "token")).toEqual({ ok: true });
    expect(lines).toEqual([]);
    expect(await value(metrics, "flowd_jobs_completed_total", 'queue="flows",handler="echo"')).toBe(1);
    expect(await value(metrics, "flowd_job_run_seconds_count", 'queue="flows",handler="echo"')).toBe(1);
    const text = await metrics.registry.metrics();
    // Added 50 ms ago: the wait lands above 10 ms and at most 1 s.
    expect(text).toMatch(/^flowd_job_wait_seconds_bucket\{le="0.01",queue="flows",handler="echo"\} 0$/m);
    expect(text).toMatch(/^flowd_job_wait_seconds_bucket\{le="1",queue="flows",handler="echo"\} 1$/m);
  });
});
