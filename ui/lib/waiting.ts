/**
 * Why a job waits, said two ways: a badge short enough for a graph node ("waiting: signal order-7",
 * "held: concurrency tenant-a", "sleeping until 14:03") and a sentence for its panel and for screen
 * readers. The reasons are the server's list (src/scheduling/waiting-for.ts); a reason this page
 * does not know yet is still shown, by its name.
 */
import { WAITING_REASONS, type WaitingFor as ServerWaitingFor } from "../../src/scheduling/waiting-for";

/** A view's or an event's `waitingFor`, as the page receives it (the reason is a plain string). */
export type WaitingFor = Omit<ServerWaitingFor, "reason"> & { reason: string };

export interface WaitText {
  /** For a node: a few words, the key cut short. */
  badge: string;
  /** For the panel, a node's title and its accessible name: everything, nothing cut. */
  sentence: string;
  /** Held out of Redis (`pending`) or parked while running (`active`). */
  kind: "held" | "parked";
}

const KEY_CHARS = 14;
const cut = (s: string, n = KEY_CHARS) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

/** "14:03" today, "8 Dec 14:03" another day, in the page's time zone. */
export function clock(iso: string, now: Date = new Date()): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const hm = t.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  return t.toDateString() === now.toDateString() ? hm : `${t.toLocaleDateString(undefined, { day: "numeric", month: "short" })} ${hm}`;
}

const jobs = (n: number) => `${n} job${n === 1 ? "" : "s"}`;

/**
 * The words for one wait, or null when nothing holds the job: no `waitingFor`, or a job that has
 * finished (an event after the last one that set it may not have cleared it yet).
 */
export function describeWait(
  w: WaitingFor | null | undefined,
  status: string,
  now: Date = new Date(),
  /** How the sentence says a time (the badge always says `clock`): the panel gives the full date. */
  sayTime: (iso: string) => string = (iso) => clock(iso, now),
): WaitText | null {
  if (!w || typeof w.reason !== "string" || (status !== "active" && status !== "pending")) return null;
  const key = typeof w.key === "string" && w.key ? w.key : undefined;
  const until = typeof w.until === "string" ? w.until : undefined;
  const at = until ? clock(until, now) : undefined;
  const till = until ? ` until ${sayTime(until)}` : "";
  const on = (short: string) => (key ? `${short} ${cut(key)}` : short);
  const onFull = key ? ` on key ${key}` : "";
  switch (w.reason) {
    case "dependencies":
      return { badge: "waiting: dependencies", sentence: "Waiting for the jobs it depends on to complete", kind: "held" };
    case "concurrency":
      return { badge: on("held: concurrency"), sentence: `Held: its concurrency limit${onFull} is full; it starts when a slot frees`, kind: "held" };
    case "rateLimit":
      return { badge: on("held: rate limit"), sentence: `Held: its rate limit${onFull} allows no more now; it starts at its turn`, kind: "held" };
    case "debounce":
      return { badge: at ? `debounced until ${at}` : "debounced", sentence: `Debounced${onFull}${till}: it runs once its window closes, with the newest data sent on that key`, kind: "held" };
    case "children": {
      const n = Array.isArray(w.keys) ? w.keys.length : 0;
      const named = n ? `: ${w.keys!.join(", ")}` : "";
      return { badge: n ? `joining ${jobs(n)}` : "joining its jobs", sentence: `Waiting for ${n ? jobs(n) : "the jobs"} it added to finish${named} (holding no worker)`, kind: "parked" };
    }
    case "sleep":
      return { badge: at ? `sleeping until ${at}` : "sleeping", sentence: `Sleeping${till} (holding no worker)`, kind: "parked" };
    case "signal":
      return { badge: on("waiting: signal"), sentence: `Waiting for a signal${onFull}${till} (holding no worker)`, kind: "parked" };
    case "approval":
      return { badge: "waiting: approval", sentence: `Waiting for an approval${till} (holding no worker)`, kind: "parked" };
    default:
      return { badge: cut(`waiting: ${w.reason}`, 24), sentence: `Waiting: ${w.reason}${onFull}${till}`, kind: status === "pending" ? "held" : "parked" };
  }
}

/** Every reason the server knows has words here (a test holds the two lists together). */
export const KNOWN_REASONS: readonly string[] = WAITING_REASONS;
