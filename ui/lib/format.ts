import { FINISHED_STATUSES, FLOW_STATUSES, JOB_STATUSES } from "../../src/statuses";

// The same lists the server uses (bundled in at build time), so a new status needs no UI change.
export { FINISHED_STATUSES, FLOW_STATUSES, JOB_STATUSES };

export const isFinished = (status: string) => (FINISHED_STATUSES as readonly string[]).includes(status);

/** "3 s", "2 min", "1 h 5 min": a duration a person reads at a glance. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const h = Math.floor(m / 60);
  return `${h} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

/** A measured time (a percentile): finer than `duration` below a minute, a dash when there is none. */
export function timing(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return duration(ms);
}

/** Local date and time, to the second. */
export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString(undefined, { hour12: false }) : "–");

/** `ago` relative to now, coarse. */
export function ago(iso: string, now = Date.now()): string {
  const d = now - new Date(iso).getTime();
  return d < 5_000 ? "just now" : `${duration(d)} ago`;
}

/** Pretty JSON for panels; undefined and null read as a dash. */
export const pretty = (v: unknown) => (v === undefined || v === null ? "–" : JSON.stringify(v, null, 2));

/**
 * The `data=` search box: empty means no filter, otherwise it must be a JSON object. The message
 * names the problem before the request is made (the API would refuse it with 400 too).
 */
export function parseDataSearch(text: string): { ok: true; value: string | undefined } | { ok: false; message: string } {
  const t = text.trim();
  if (!t) return { ok: true, value: undefined };
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return { ok: false, message: 'Not valid JSON. Write an object such as {"customer": 42}.' };
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) return { ok: false, message: 'Write a JSON object, such as {"customer": 42}.' };
  return { ok: true, value: JSON.stringify(v) };
}
