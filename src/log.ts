import { AsyncLocalStorage } from "node:async_hooks";
import pino, { type Logger as PinoLogger } from "pino";
import type { LogLevel } from "./config";

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

/**
 * What the request or job in progress adds to every line it causes: its `requestId` (set by the
 * request-log plugin for the rest of the request's async work) or `jobId` (by the job observer).
 * Read by every logger's mixin, so a call site deep in a service needs no logger of its own to
 * carry the id.
 */
export const logContext = new AsyncLocalStorage<{ requestId?: string; jobId?: string }>();

/**
 * One JSON line per entry on stdout (pino, written synchronously on the calling thread: no worker
 * thread transport, which does not survive `bun build --compile`); child loggers carry their bound
 * fields. `write` replaces stdout (tests), each line without its newline.
 */
export function createLogger(
  level: LogLevel,
  bound: Record<string, unknown> = {},
  write?: (line: string) => void,
): Logger {
  const destination = write ? { write: (chunk: string) => write(chunk.endsWith("\n") ? chunk.slice(0, -1) : chunk) } : stdout();
  const root = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Fields arrive already described by safeFields; pino's own error serializer would re-read
      // the error-like object and join its causes' messages in.
      serializers: { err: (value: unknown) => value },
      mixin: () => {
        const store = logContext.getStore();
        if (!store) return {};
        const out: Record<string, string> = {};
        if (store.requestId !== undefined) out.requestId = store.requestId;
        if (store.jobId !== undefined) out.jobId = store.jobId;
        return out;
      },
    },
    destination,
  );
  return wrap(root, safeFields(bound));
}

/**
 * stdout, written synchronously: a line is out before the call returns, so the last lines before an
 * exit are never lost. A closed stdout (EPIPE) drops lines instead of crashing the process.
 */
function stdout() {
  const dest = pino.destination({ dest: 1, sync: true });
  dest.on("error", () => {});
  return dest;
}

/**
 * A logger with `bound` on every line. A child is made from the root with the fields merged, not
 * as pino's child of a child, which would print a field bound twice (`role`) twice.
 */
function wrap(root: PinoLogger, bound: Record<string, unknown>): Logger {
  const p = Object.keys(bound).length > 0 ? root.child(bound) : root;
  const emit = (lvl: Exclude<LogLevel, "silent">) => (msg: string, fields?: Record<string, unknown>) => {
    if (!p.isLevelEnabled(lvl)) return;
    if (fields) p[lvl](safeFields(fields), msg);
    else p[lvl](msg);
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => wrap(root, { ...bound, ...safeFields(fields) }),
  };
}
