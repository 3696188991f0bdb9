import type { LogLevel } from "./config";

const RANK: { [level in LogLevel]: number } = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const QUERY_SHOWN = 500;

/**
 * Drizzle's failed-query message is `Failed query: <sql>\nparams: <values>`, and `String(err)` of
 * it is what many call sites log: the values are users' data (job data, names, keys), so they are
 * cut, and the SQL text (placeholders only) is kept, shortened.
 */
export function withoutParameters(text: string): string {
  if (text.startsWith("PostgresError: ")) return withoutQuotedValue(text);
  const at = text.indexOf("\nparams: ");
  if (at < 0) return text;
  const query = text.slice(0, at);
  return (query.length > QUERY_SHOWN ? query.slice(0, QUERY_SHOWN) + "…" : query) + " (parameters not logged)";
}

/**
 * Postgres words some refusals with the value (`invalid input syntax for type integer: "abc"`);
 * the quoted value at the end goes, the words stay.
 */
function withoutQuotedValue(message: string): string {
  return message.replace(/: ".*"$/s, ': "…"');
}

/**
 * What a log line says about an error: its class, code, message and stack frames, and its causes
 * the same way. Never its own fields: postgres.js errors carry `parameters` and `args`, Postgres's
 * `detail` and `where` quote the offending row, Drizzle's carry `params`.
 */
export function describeError(err: unknown, depth = 0): Record<string, unknown> | string {
  if (!(err instanceof Error)) return withoutParameters(String(err));
  const e = err as Error & { code?: unknown; severity?: unknown; routine?: unknown; cause?: unknown };
  const isPostgres = e.constructor?.name === "PostgresError" || (typeof e.severity === "string" && typeof e.routine === "string");
  const message = isPostgres ? withoutQuotedValue(e.message) : withoutParameters(e.message);
  // The stack's first lines repeat the message; only the frames are kept after the new first line.
  const frames = (e.stack ?? "").split("\n").filter((line) => /^\s+at /.test(line));
  const out: Record<string, unknown> = { class: e.constructor?.name ?? e.name, message };
  if (typeof e.code === "string" || typeof e.code === "number") out.code = e.code;
  if (frames.length > 0) out.stack = [`${e.name}: ${message}`, ...frames].join("\n");
  if (e.cause !== undefined && e.cause !== null && depth < 3) out.cause = describeError(e.cause, depth + 1);
  return out;
}

/** Errors and strings among the fields pass through describeError / withoutParameters. */
function safeFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields))
    out[key] = value instanceof Error ? describeError(value) : typeof value === "string" ? withoutParameters(value) : value;
  return out;
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
    const entry = { time: new Date().toISOString(), level: lvl, msg, ...bound, ...(fields ? safeFields(fields) : {}) };
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
