import type { Db } from "../db/client";
import { appendLogLines, type LogLine } from "../db/queries/job-reports";
import type { Logger } from "../log";

const FLUSH_AFTER_MS = 50;
/** One line's cap: the per-job bound (64 KiB) is enforced in Postgres. */
export const MAX_LINE_CHARS = 4096;

/**
 * Collects `ctx.log` lines per job and writes them in small batches (one call per job per flush),
 * so a chatty handler costs a statement per 50 ms rather than per line. A job's lines are flushed
 * before its attempt ends, so they are in Postgres before its status changes.
 */
export function createJobLogSink(db: Db, log: Logger) {
  const pending = new Map<string, LogLine[]>();
  const writing = new Map<string, Promise<void>>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();

  const flush = (jobRowId: string): Promise<void> => {
    const timer = timers.get(jobRowId);
    if (timer) clearTimeout(timer);
    timers.delete(jobRowId);
    const lines = pending.get(jobRowId);
    pending.delete(jobRowId);
    const before = writing.get(jobRowId) ?? Promise.resolve();
    if (!lines || lines.length === 0) return before;
    const next = before
      .then(() => appendLogLines(db, jobRowId, lines))
      .catch((err) => log.warn("could not keep a job's log lines", { jobId: jobRowId, lines: lines.length, err: String(err) }))
      .finally(() => {
        if (writing.get(jobRowId) === next) writing.delete(jobRowId);
      });
    writing.set(jobRowId, next);
    return next;
  };

  return {
    add(jobRowId: string, line: string) {
      const list = pending.get(jobRowId) ?? [];
      list.push({ at: new Date().toISOString(), line: line.slice(0, MAX_LINE_CHARS) });
      pending.set(jobRowId, list);
      if (!timers.has(jobRowId)) timers.set(jobRowId, setTimeout(() => void flush(jobRowId), FLUSH_AFTER_MS));
    },
    flush,
    async stop() {
      await Promise.all([...new Set([...pending.keys(), ...writing.keys()])].map(flush));
    },
  };
}
export type JobLogSink = ReturnType<typeof createJobLogSink>;
