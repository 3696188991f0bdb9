import type { LogLevel } from "./config";

const RANK: { [level in LogLevel]: number } = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** One JSON line per entry on stdout; child loggers carry their bound fields. */
export function createLogger(
  level: LogLevel,
  bound: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(line + "\n"),
): Logger {
  const min = RANK[level];
  const emit = (lvl: Exclude<LogLevel, "silent">) => (msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg, ...bound, ...fields };
    if (entry.err instanceof Error) {
      const cause = (entry.err as { cause?: unknown }).cause;
      entry.err = { message: entry.err.message, stack: entry.err.stack, ...(cause ? { cause: String(cause) } : {}) };
    }
    write(JSON.stringify(entry));
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => createLogger(level, { ...bound, ...fields }, write),
  };
}
