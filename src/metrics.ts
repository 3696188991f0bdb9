import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "./version";

/**
 * A metric read from some component's own counters at scrape time (recorder, listener, admission):
 * rendered as it is, after the registry's.
 */
export interface Metric {
  name: string;
  help: string;
  type: "gauge" | "counter";
  samples: { labels?: Record<string, string>; value: number }[];
}

const escape = (v: string) => v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
const escapeHelp = (v: string) => v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");

export function renderMetrics(metrics: Metric[]): string {
  const lines: string[] = [];
  for (const m of metrics) {
    lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels = s.labels && Object.keys(s.labels).length > 0
        ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`
        : "";
      lines.push(`${m.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** Prometheus' text format, as prom-client and the hand-rendered metrics both write it. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

// Seconds. HTTP: a cached read is ~1 ms, a 1,000-job create ~100 ms, a long-poll up to 60 s.
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
// Jobs run from a millisecond (echo) to hours (sleep, http callbacks); waits likewise.
const JOB_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/**
 * One process's registry: process and runtime metrics, flowd_build_info, and the instruments the
 * HTTP layer and the workers observe. A factory, not prom-client's global registry, so that each
 * app or worker set a test builds has its own counts.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters, which promtool refuses; the same counts remain by type in
  // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) registry.removeSingleMetric(name);
  new Gauge({ name: "flowd_build_info", help: "Always 1; the running version in its label.", labelNames: ["version"], registers: [registry] }).set({ version: VERSION }, 1);
  return {
    registry,
    httpRequestDuration: new Histogram({
      name: "flowd_http_request_duration_seconds",
      help: "HTTP requests by method, route pattern and status code, from the request's arrival to its response.",
      labelNames: ["method", "route", "status"] as const,
      buckets: HTTP_BUCKETS,
      registers: [registry],
    }),
    jobRunTime: new Histogram({
      name: "flowd_job_run_seconds",
      help: "Time a worker spent on one job attempt, by queue and handler (success or failure).",
      labelNames: ["queue", "handler"] as const,
      buckets: JOB_BUCKETS,
      registers: [registry],
    }),
    jobWaitTime: new Histogram({
      name: "flowd_job_wait_seconds",
      help: "From when a job could first run (added, plus its delay) to when an attempt started, by queue and handler. A parent's includes the time its children ran; a retry's includes the earlier attempts and backoff.",
      labelNames: ["queue", "handler"] as const,
      buckets: JOB_BUCKETS,
      registers: [registry],
    }),
    jobsCompleted: new Counter({
      name: "flowd_jobs_completed_total",
      help: "Jobs completed by this process's workers, by queue and handler.",
      labelNames: ["queue", "handler"] as const,
      registers: [registry],
    }),
    jobsFailed: new Counter({
      name: "flowd_jobs_failed_total",
      help: "Jobs failed for good, by queue and handler: by this process's workers (no attempt left, or a permanent failure), and parents BullMQ failed because a child failed, counted by the process recording statuses.",
      labelNames: ["queue", "handler"] as const,
      registers: [registry],
    }),
    jobAttemptsFailed: new Counter({
      name: "flowd_job_attempts_failed_total",
      help: "Failed job attempts (retried or not) by this process's workers, by queue and handler.",
      labelNames: ["queue", "handler"] as const,
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

/** The registry's exposition followed by the hand-rendered metrics (their names never overlap). */
export async function exposition(metrics: Metrics, extra: Metric[]): Promise<string> {
  const own = await metrics.registry.metrics();
  return (own.endsWith("\n") ? own : own + "\n") + renderMetrics(extra);
}
