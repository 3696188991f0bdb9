/** What every client command gets: the parsed flags, the output, the API (connected on first use). */
import type { Api } from "./api";
import { parseSince, type Io, type Palette } from "./output";

/** A command line that cannot be run as given: exit 2 with the usage. */
export class ClientUsageError extends Error {}

export interface Ctx {
  io: Io;
  json: boolean;
  p: Palette;
  api: () => Api;
  values: Record<string, string | boolean | undefined>;
}

/** JSON mode: the value, one line; otherwise the text. */
export function print(ctx: Ctx, value: unknown, text: () => string, code = 0): number {
  ctx.io.out(ctx.json ? JSON.stringify(value) + "\n" : text());
  return code;
}

export const query = (q: Record<string, string | undefined>) => {
  const entries = Object.entries(q).filter(([, v]) => v !== undefined && v !== "") as [string, string][];
  return entries.length ? `?${new URLSearchParams(entries)}` : "";
};

function timeFlag(ctx: Ctx, name: "since" | "until"): string | undefined {
  const text = ctx.values[name] as string | undefined;
  if (text === undefined) return undefined;
  const iso = parseSince(text);
  if (!iso) throw new ClientUsageError(`--${name} takes a duration before now (30s, 15m, 1h, 2d, 1w) or a date-time (2026-01-31T12:00:00Z), not '${text}'`);
  return iso;
}

/** The filter flags as the API names them; `data` stays text for a query string, or is parsed for a body. */
export function filters(ctx: Ctx, kind: "flows" | "jobs") {
  const v = ctx.values as Record<string, string | undefined>;
  if (kind === "jobs" && v.definition !== undefined) throw new ClientUsageError("--definition applies to flows only");
  return {
    status: v.status,
    name: v.name,
    data: v.data,
    since: timeFlag(ctx, "since"),
    until: timeFlag(ctx, "until"),
    definition: v.definition,
    scheduleId: v.schedule,
  };
}
