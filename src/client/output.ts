/** What the command line prints: colours only for a terminal without NO_COLOR, tables, and times. */

export interface Io {
  env: Record<string, string | undefined>;
  out(text: string): void;
  err(text: string): void;
  /** Whether stdout is a terminal (colours, redrawn frames). */
  isTty: boolean;
  /** Whether stdin is a terminal (a confirmation can be asked). */
  stdinTty: boolean;
  /** One line typed by the user (for a confirmation or a token). */
  readLine(prompt: string): Promise<string | null>;
  /** Terminal height, when known: a live frame is kept within it. */
  rows?: number;
}

export type Paint = (text: string) => string;
export interface Palette {
  enabled: boolean;
  bold: Paint;
  dim: Paint;
  red: Paint;
  green: Paint;
  yellow: Paint;
  blue: Paint;
  cyan: Paint;
  grey: Paint;
}

export function palette(io: Io, json: boolean): Palette {
  const enabled = !json && io.isTty && io.env.NO_COLOR === undefined && io.env.TERM !== "dumb";
  const code = (open: number, close: number): Paint => (enabled ? (s) => `\x1b[${open}m${s}\x1b[${close}m` : (s) => s);
  return {
    enabled,
    bold: code(1, 22),
    dim: code(2, 22),
    red: code(31, 39),
    green: code(32, 39),
    yellow: code(33, 39),
    blue: code(34, 39),
    cyan: code(36, 39),
    grey: code(90, 39),
  };
}

/** A status in its colour, the same everywhere. */
export function paintStatus(p: Palette, status: string): string {
  switch (status) {
    case "completed":
      return p.green(status);
    case "failed":
      return p.red(status);
    case "cancelled":
      return p.grey(status);
    case "active":
    case "running":
      return p.cyan(status);
    default:
      return p.yellow(status);
  }
}

const ANSI = /\x1b\[[0-9;]*m/g;
export const visibleLength = (s: string) => s.replace(ANSI, "").length;

/** Columns padded to their widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][], p: Palette): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visibleLength(c)))).join("  ").trimEnd();
  return [p.bold(line(headers)), ...rows.map(line)].join("\n") + "\n";
}

/** 1234 ms → `1.2s`, 75 s → `1m15s`, 2 h → `2h00m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** An ISO time as `2026-01-31 12:00:05` (UTC, as stored): sortable and short. */
export const shortTime = (iso: string | null | undefined) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

/** `30s`, `15m`, `1h`, `2d`, `1w` before `now`, or a date-time as is: what `--since` / `--until` take. */
export function parseSince(text: string, now = Date.now()): string | null {
  const rel = /^(\d+)(s|m|h|d|w)$/.exec(text);
  if (rel) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[rel[2] as "s"];
    return new Date(now - Number(rel[1]) * unit).toISOString();
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const at = new Date(text.replace(" ", "T"));
    return Number.isNaN(at.getTime()) ? null : at.toISOString();
  }
  return null;
}
