/**
 * The one rule for reading a user's event log after a seq, for GET /v1/events and a socket's
 * replay alike: events after a seq retention already removed are refused (410), a user sees only
 * their own events, and a page is bounded by count and by bytes.
 */
import type { DbOrTx } from "../db/client";
import { isEventsExpired } from "../db/queries/event-log";
import { userEvents } from "../db/queries/events";
import type { FlowdEvent } from "../event-types";
import { AppError } from "../errors";
import { itemsWithinBytes } from "./cursor";

export class EventsExpired extends AppError {
  constructor(after: number) {
    super(
      410,
      "events_expired",
      `Events after seq ${after} are no longer kept; reload the current state (GET the flow or job), then follow the events from the newest seq (on a socket: subscribe without 'after').`,
    );
    this.name = "EventsExpired";
  }
}

/** Throws EventsExpired when retention removed events that follow `after`. */
export async function assertEventsKept(db: DbOrTx, after: number): Promise<void> {
  if (await isEventsExpired(db, after)) throw new EventsExpired(after);
}

/**
 * One page of a user's (or one of their flows') events in (after, upTo], ascending, within
 * PAGE_MAX_BYTES of JSON. `more`: the page ended at its count or its bytes, so events may follow
 * its last one; otherwise it holds everything up to `upTo`.
 */
export async function eventsPage(
  db: DbOrTx,
  q: { userId: string; after: number; upTo?: number; flowId?: string; limit: number },
): Promise<{ events: FlowdEvent[]; more: boolean }> {
  const page = await userEvents(db, q);
  const kept = itemsWithinBytes(page);
  return { events: page.slice(0, kept), more: page.length === q.limit || kept < page.length };
}
