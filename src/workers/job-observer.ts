import { DelayedError, UnrecoverableError, type Job, type Processor } from "bullmq";
import { logContext, type Logger } from "../log";
import type { Metrics } from "../metrics";
import { inJobSpan } from "../telemetry";
import { readJob } from "../services/job-envelope";

/**
 * Wraps a queue's processor with what operators read: run time and queue wait histograms, the
 * completed / failed counters, a warn line per failed attempt, and the attempt's trace span.
 */
export function observeJobs(queue: string, processor: Processor, deps: { log: Logger; metrics: Metrics }): Processor {
  const { log, metrics } = deps;
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    const labels = { queue, handler: job.name };
    const startedAt = Date.now();
    // From when the job could first run: added, plus its delay (BullMQ keeps both on the job).
    const readyAt = job.timestamp + (job.opts.delay ?? 0);
    // A parked http task woken to apply its callback (or resuming its wait after Redis lost it)
    // re-runs the same attempt: it did not wait in the queue.
    const rerun = job.attemptsStarted > job.attemptsMade + 1 || (job.attemptsMade === 0 && readJob(job).meta.resumesParked === true);
    if (job.timestamp > 0 && !rerun) metrics.jobWaitTime.observe(labels, Math.max(0, startedAt - readyAt) / 1000);
    const started = performance.now();
    try {
      // Lines the handler causes carry the job's id, as a request's carry the request's.
      const result = await logContext.run({ jobId: job.id }, () => inJobSpan(queue, job, () => processor(job, token, signal)));
      metrics.jobRunTime.observe(labels, (performance.now() - started) / 1000);
      metrics.jobsCompleted.inc(labels);
      return result;
    } catch (err) {
      metrics.jobRunTime.observe(labels, (performance.now() - started) / 1000);
      // Parked (an http task's service answered 202): the attempt goes on, holding no worker.
      if (err instanceof DelayedError) throw err;
      metrics.jobAttemptsFailed.inc(labels);
      const attempt = job.attemptsMade + 1;
      const final = err instanceof UnrecoverableError || attempt >= (job.opts.attempts ?? 1);
      if (final) metrics.jobsFailed.inc(labels);
      log.warn("job attempt failed", {
        jobId: job.id,
        queue,
        handler: job.name,
        // The run's attempt number: attempts made before Redis lost the job count too.
        attempt: (readJob(job).meta.attemptsCarried ?? 0) + attempt,
        final,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  };
}
