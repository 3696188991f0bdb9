import type { Db } from "../db/client";
import { finishedPerMinute, flowCountsByStatus, handlerTimings, jobCountsByStatus } from "../db/queries/stats";
import { InvalidInput } from "../errors";
import { BULLMQ_FINISHED_STATUSES, FLOW_STATUSES, JOB_STATUSES, type FlowStatus, type JobStatus } from "../statuses";
import type { User } from "./deps";

export const MAX_WINDOW_MINUTES = 24 * 60;
/** `15m`, `1h`, `24h`: what `window=` takes. */
export const WINDOW_PATTERN = "^[0-9]{1,4}[mh]$";

export interface Stats {
  window: string;
  from: string;
  to: string;
  flows: Record<FlowStatus, number>;
  jobs: Record<JobStatus, number>;
  perMinute: { minute: string; completed: number; failed: number }[];
  handlers: HandlerStats[];
}

/** Percentiles in ms; null when no job of the handler had both times in the window. */
export interface Percentiles {
  p50: number | null;
  p95: number | null;
}

/** One handler's jobs finished in the window: counts, and their last run's run time and wait. */
export interface HandlerStats {
  handler: string;
  completed: number;
  failed: number;
  runMs: Percentiles;
  waitMs: Percentiles;
}

const percentiles = (pair: [number, number] | null): Percentiles => ({
  p50: pair ? Math.round(Number(pair[0]) * 10) / 10 : null,
  p95: pair ? Math.round(Number(pair[1]) * 10) / 10 : null,
});

/** Minutes in a `window=` value; 400 naming the parameter when it is outside 1 minute to 24 hours. */
export function windowMinutes(text: string): number {
  const match = /^(\d+)([mh])$/.exec(text);
  const minutes = match ? Number(match[1]) * (match[2] === "h" ? 60 : 1) : NaN;
  if (!(minutes >= 1 && minutes <= MAX_WINDOW_MINUTES))
    throw new InvalidInput(`'window' must be from 1m to 24h (such as 15m or 1h), not '${text}'.`, [
      { path: "/window", message: "must be from 1m to 24h" },
    ]);
  return minutes;
}

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

/**
 * Counts by status now, jobs finished per minute over the window (every minute present, zeros
 * included), and per handler the run time and wait percentiles of the jobs finished in the window.
 */
export async function userStats(db: Db, user: User, windowText = "1h", now = new Date()): Promise<Stats> {
  const minutes = windowMinutes(windowText);
  const end = new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  const from = new Date(end.getTime() - (minutes - 1) * 60_000);
  const [flowRows, jobRows, minuteRows, timingRows] = await Promise.all([
    flowCountsByStatus(db, user.userId),
    jobCountsByStatus(db, user.userId),
    finishedPerMinute(db, user.userId, from),
    handlerTimings(db, user.userId, from),
  ]);
  const flows = zeros(FLOW_STATUSES);
  for (const r of flowRows) if (r.status in flows) flows[r.status as FlowStatus] = r.n;
  const jobs = zeros(JOB_STATUSES);
  for (const r of jobRows) if (r.status in jobs) jobs[r.status as JobStatus] = r.n;
  const perMinute = Array.from({ length: minutes }, (_, i) => ({
    minute: new Date(from.getTime() + i * 60_000).toISOString().replace(".000Z", "Z"),
    ...zeros(BULLMQ_FINISHED_STATUSES),
  }));
  const index = new Map(perMinute.map((m, i) => [m.minute, i]));
  for (const r of minuteRows) {
    const i = index.get(r.minute);
    if (i !== undefined && (r.status === "completed" || r.status === "failed")) perMinute[i]![r.status] += r.n;
  }
  const handlers = timingRows.map((r) => ({
    handler: r.handler,
    completed: r.completed,
    failed: r.failed,
    runMs: percentiles(r.run_ms),
    waitMs: percentiles(r.wait_ms),
  }));
  const to = new Date(end.getTime() + 60_000).toISOString().replace(".000Z", "Z");
  return { window: windowText, from: perMinute[0]!.minute, to, flows, jobs, perMinute, handlers };
}
