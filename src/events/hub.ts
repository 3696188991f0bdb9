import type { FlowdEvent, LoggedEvent } from "../event-types";

/** Anything that can publish to a topic: Bun's server. */
export interface Publisher {
  publish(topic: string, message: string): unknown;
  subscriberCount(topic: string): number;
}

export const userTopic = (userId: string) => `u:${userId}`;
export const flowTopic = (flowId: string) => `f:${flowId}`;

/**
 * Fans events out to sockets through Bun's native pub/sub: a topic per user and one per flow.
 * It knows topics and sockets, not SQL. `lastSeq` is the highest seq published, which lets a
 * subscriber replaying from the log know exactly where live delivery takes over.
 */
export function createHub() {
  let server: Publisher | null = null;
  const listeners = new Set<(e: LoggedEvent) => void>();
  // The socket routes count here too: client messages, log pages read by replays, sockets working
  // on a subscribe (lookups or replay), and replays waiting for their socket to drain, right now.
  const stats = { lastSeq: 0, published: 0, socketMessages: 0, replayPages: 0, subscribing: 0, replaysWaiting: 0 };
  // Whether any socket here is subscribed (asked of the socket routes, which own that state), and a
  // count of joins: the listener reads job events only while someone may want them, and re-reads if
  // a socket joined during a read that skipped them.
  let anySubscribed: () => boolean = () => false;
  let joins = 0;
  return {
    stats,
    get lastSeq() {
      return stats.lastSeq;
    },
    get hasSubscribers() {
      return anySubscribed();
    },
    get joins() {
      return joins;
    },
    /** Where to ask whether any socket is subscribed. */
    watchSubscriptions(fn: () => boolean) {
      anySubscribed = fn;
    },
    /** A socket joined a topic (call in the same tick as its `subscribe`). */
    joined() {
      joins++;
    },
    attach(publisher: Publisher) {
      server = publisher;
    },
    /** In-process observers (long-polls); called for every event before it goes out. */
    observe(fn: (e: LoggedEvent) => void) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    /**
     * Publishes events in seq order; `upTo` says the log was read through that seq (it may be past
     * the last event when the reader skipped events nobody here subscribes to).
     */
    publish(events: LoggedEvent[], upTo = 0) {
      for (const e of events) {
        if (e.seq <= stats.lastSeq) continue;
        stats.lastSeq = e.seq;
        for (const fn of listeners) fn(e);
        if (!server) continue;
        const topics = [userTopic(e.userId), ...(e.flowId ? [flowTopic(e.flowId)] : [])].filter((t) => server!.subscriberCount(t) > 0);
        if (topics.length === 0) continue; // nobody listens: skip the serialisation
        const message = toWireMessage(e);
        for (const topic of topics) server.publish(topic, message);
        stats.published++;
      }
      stats.lastSeq = Math.max(stats.lastSeq, upTo);
    },
  };
}
export type Hub = ReturnType<typeof createHub>;

/**
 * A socket message for an event: `type` is the message kind ("event", like "pong" or "error"), so the
 * event's own type travels as `event`.
 */
export function toWireMessage(e: FlowdEvent | LoggedEvent): string {
  const { type, ...rest } = e;
  delete (rest as Partial<LoggedEvent>).userId;
  return JSON.stringify({ type: "event", event: type, ...rest });
}
