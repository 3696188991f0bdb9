import type { Db } from "../db/client";
import { eventsPage } from "../services/event-log";
import { toWireMessage } from "../events/hub";

/** Events per page read from the log: about 150 KB on the wire for ordinary job events. */
export const REPLAY_PAGE = 500;

/** How long a replay waits for a socket's queue to go under its high-water mark before giving up on it. */
export const REPLAY_DRAIN_TIMEOUT_MS = 30_000;

export interface ReplayRequest {
  db: Db;
  userId: string;
  flowId?: string;
  after: number;
  /** The highest seq live delivery has published; each page reads up to it. */
  lastSeq(): number;
  /**
   * Joins the live topic. Called in the same tick as the check that nothing newer was published,
   * so every later event reaches the socket live: none missing, none twice.
   */
  goLive(): void;
  /** Aborted when the subscription is replaced or the socket closes: no page is read or sent after it. */
  signal: AbortSignal;
  send(message: string): unknown;
  /** Bytes the socket has queued and not yet written. */
  buffered(): number;
  /** The next page is read only once `buffered()` is below this. */
  highWater: number;
  drainTimeoutMs?: number;
  /** After each page sent: the seq the client has everything up to. */
  progress?(cursor: number): void;
  /** Before each page read, and when a wait for the socket to drain starts and ends (for counting). */
  onPage?(): void;
  onWait?(waiting: boolean): void;
}

export type ReplayOutcome =
  | { kind: "live" }
  | { kind: "cancelled"; cursor: number }
  /** The socket did not read for `drainTimeoutMs`: the caller closes it (the client resumes with `after`). */
  | { kind: "stalled"; cursor: number };

/**
 * Sends a user's (or one flow's) stored events after `after`, page by page, then goes live. Paced by
 * the socket: a page is read only when the previous ones have mostly left, so a client that stops
 * reading holds at most about one page plus `highWater` here, and never makes the API load the log.
 */
export async function replayEvents(r: ReplayRequest): Promise<ReplayOutcome> {
  let cursor = r.after;
  for (;;) {
    const drained = await drain(r);
    if (r.signal.aborted) return { kind: "cancelled", cursor };
    if (!drained) return { kind: "stalled", cursor };
    const upTo = r.lastSeq();
    r.onPage?.();
    const { events: page, more } = await eventsPage(r.db, { userId: r.userId, after: cursor, upTo, flowId: r.flowId, limit: REPLAY_PAGE });
    if (r.signal.aborted) return { kind: "cancelled", cursor };
    for (const e of page) r.send(toWireMessage(e));
    // A send past the buffer limit closes the socket, which aborts the signal.
    if (r.signal.aborted) return { kind: "cancelled", cursor: page[page.length - 1]?.seq ?? cursor };
    if (more) cursor = page[page.length - 1]!.seq;
    else {
      cursor = upTo;
      if (r.lastSeq() === upTo) {
        r.goLive();
        return { kind: "live" };
      }
    }
    r.progress?.(cursor);
  }
}

/** True once the socket's queue is under the high-water mark; false when aborted or timed out. */
async function drain(r: ReplayRequest): Promise<boolean> {
  if (r.buffered() < r.highWater) return !r.signal.aborted;
  const deadline = Date.now() + (r.drainTimeoutMs ?? REPLAY_DRAIN_TIMEOUT_MS);
  let wait = 5;
  r.onWait?.(true);
  try {
    while (!r.signal.aborted) {
      await pause(wait, r.signal);
      if (r.buffered() < r.highWater) return !r.signal.aborted;
      if (Date.now() >= deadline) return false;
      wait = Math.min(wait * 2, 100);
    }
    return false;
  } finally {
    r.onWait?.(false);
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
