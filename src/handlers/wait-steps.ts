import { Type } from "@sinclair/typebox";
import { compileSchema } from "./json-schema";
import { defineHandler } from "./types";

/**
 * The built-in wait steps: `wait` (durable sleep), `signal` and `approval`. Their `run` only says
 * what to wait for (a WaitRequest); the worker parks the job — no worker slot, no BullMQ lock, the
 * wake time in Postgres and in BullMQ's delayed set — and ends the wait (workers/waits.ts).
 */

const DAY_MS = 86_400_000;
/** A `wait` lasts at most a year; a signal's or an approval's `timeoutMs` at most 30 days. */
export const MAX_WAIT_MS = 365 * DAY_MS;
export const MAX_WAIT_TIMEOUT_MS = 30 * DAY_MS;

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS };
export const DURATION_PATTERN = "^[0-9]+(ms|s|m|h|d|w)$";

/** A duration as milliseconds: a number of ms, or `"90s"`, `"15m"`, `"3d"` (ms, s, m, h, d, w). */
export function durationMs(value: number | string): number {
  if (typeof value === "number") return value;
  const m = /^([0-9]+)(ms|s|m|h|d|w)$/.exec(value);
  return m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
}

/** What a wait step's run asks the worker for. `until` is absent when only a signal or decision ends it. */
export class WaitRequest {
  constructor(
    readonly reason: "sleep" | "signal" | "approval",
    readonly until: Date | null,
    /** `result`: what the step returns when its sleep ends (a `wait`'s is `{ waitedUntil }`). */
    readonly terms: { key?: string; schema?: unknown; prompt?: string; approvers?: string[]; timeoutMs?: number; result?: unknown } = {},
  ) {}
}

const Duration = Type.Union([Type.Integer({ minimum: 0, maximum: MAX_WAIT_MS }), Type.String({ pattern: DURATION_PATTERN })], {
  description: 'milliseconds, or a number with a unit: "90s", "15m", "3d" (ms, s, m, h, d, w)',
});
const Timeout = Type.Integer({ minimum: 1, maximum: MAX_WAIT_TIMEOUT_MS, description: "fails the step with code `timed_out` when nothing came in time" });

export const wait = defineHandler({
  data: Type.Object(
    {
      for: Type.Optional(Duration),
      until: Type.Optional(Type.String({ format: "date-time", description: "an ISO time; one in the past runs at once" })),
    },
    { additionalProperties: true },
  ),
  run: async ({ data }) => new WaitRequest("sleep", waitUntil(data, Date.now())),
});

/** When a `wait` ends: the later of `for` from now and `until` (either alone; neither: now). A past `until` stays past: it runs at once. */
export function waitUntil(data: { for?: number | string; until?: string }, now: number): Date {
  if (data.for === undefined && data.until === undefined) return new Date(now);
  const after = data.for === undefined ? -Infinity : now + durationMs(data.for);
  const at = data.until === undefined ? -Infinity : Date.parse(data.until);
  return new Date(Math.max(after, at));
}

export const signal = defineHandler({
  data: Type.Object(
    {
      key: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "`POST /v1/signals` with this key completes the step" })),
      timeoutMs: Type.Optional(Timeout),
      schema: Type.Optional(Type.Unknown({ description: "a JSON Schema the payload must match (else 400)" })),
    },
    { additionalProperties: true },
  ),
  run: async ({ data }) =>
    new WaitRequest("signal", data.timeoutMs === undefined ? null : new Date(Date.now() + data.timeoutMs), {
      ...(data.key !== undefined ? { key: data.key } : {}),
      ...(data.schema !== undefined ? { schema: data.schema } : {}),
      ...(data.timeoutMs !== undefined ? { timeoutMs: data.timeoutMs } : {}),
    }),
});

export const approval = defineHandler({
  data: Type.Object(
    {
      prompt: Type.String({ minLength: 1, maxLength: 2000, description: "what the approver is asked" }),
      approvers: Type.Optional(
        Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100, description: "user names who may decide (default: the owner)" }),
      ),
      timeoutMs: Type.Optional(Timeout),
    },
    { additionalProperties: true },
  ),
  run: async ({ data }) =>
    new WaitRequest("approval", data.timeoutMs === undefined ? null : new Date(Date.now() + data.timeoutMs), {
      prompt: data.prompt,
      ...(data.approvers ? { approvers: data.approvers } : {}),
      ...(data.timeoutMs !== undefined ? { timeoutMs: data.timeoutMs } : {}),
    }),
});

/**
 * What a wait step's data schema cannot say: a duration string over the maximum, an `until` that is
 * not a time, a signal `schema` that is not a JSON Schema. The first problem, or null.
 */
export function waitStepProblem(name: string, data: Record<string, unknown>): { path: string; message: string } | null {
  if (name === "wait") {
    if (typeof data.for === "string" && durationMs(data.for) > MAX_WAIT_MS) return { path: "/for", message: `must be at most ${MAX_WAIT_MS / DAY_MS} days` };
    if (typeof data.until === "string") {
      const at = Date.parse(data.until);
      if (Number.isNaN(at)) return { path: "/until", message: "must be an ISO date-time" };
      if (at - Date.now() > MAX_WAIT_MS) return { path: "/until", message: `must be at most ${MAX_WAIT_MS / DAY_MS} days ahead` };
    }
  }
  if (name === "signal" && data.schema !== undefined) {
    try {
      compileSchema(data.schema);
    } catch (err) {
      return { path: "/schema", message: `is not a JSON Schema: ${(err as Error).message}` };
    }
  }
  return null;
}
