import type { Sql } from "postgres";
import type { Db } from "../db/client";
import { eventsAfter, flowLevelEventsAfter, maxEventSeq } from "../db/queries/events";
import type { Logger } from "../log";
import type { Hub } from "./hub";
import { EVENTS_CHANNEL } from "../event-types";

const PAGE = 1000;

/**
 * Turns the event log into a live, ordered feed for this process. NOTIFY is only a doorbell: on
 * every ring, on every (re)connect of the LISTEN connection, and on a slow safety poll, it reads
 * the table after the last seq it handled. A lost notification costs latency, never an event.
 * While no socket here is subscribed it reads only flow-level events (what long-polls need); a
 * socket joining during such a read makes it read the same range again, in full.
 */
export function startListener(deps: {
  db: Db;
  sql: Sql;
  log: Logger;
  hub: Pick<Hub, "publish" | "hasSubscribers" | "joins">;
  pollMs?: number;
}) {
  const log = deps.log.child({ component: "listener" });
  const stats = { lastSeq: 0, reads: 0, notifications: 0, reconnects: 0, lagMs: 0 };
  let running = true;
  let reading: Promise<void> | null = null;
  let again = false;

  /** One reader at a time; a ring during a read schedules exactly one more read. */
  const catchUp = (): Promise<void> => {
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      do {
        again = false;
        for (;;) {
          const everything = deps.hub.hasSubscribers;
          const joins = deps.hub.joins;
          const { events, upTo } = everything ? await fullPage(stats.lastSeq) : await flowLevelEventsAfter(deps.db, stats.lastSeq, PAGE);
          stats.reads++;
          if (!everything && deps.hub.joins !== joins) continue; // a socket joined meanwhile: read it all
          const last = events[events.length - 1];
          if (last) stats.lagMs = Date.now() - Date.parse(last.at);
          if (upTo <= stats.lastSeq) break;
          stats.lastSeq = upTo;
          deps.hub.publish(events, upTo);
          if (events.length < PAGE) break;
        }
      } while (again && running);
    })()
      .catch((err) => log.warn("cannot read the event log; will retry", { err: String(err) }))
      .finally(() => {
        reading = null;
      });
    return reading;
  };

  const fullPage = async (after: number) => {
    const events = await eventsAfter(deps.db, after, PAGE);
    return { events, upTo: events[events.length - 1]?.seq ?? after };
  };

  let subscription: { unlisten(): Promise<void> } | undefined;
  const ready = (async () => {
    stats.lastSeq = await maxEventSeq(deps.db);
    let first = true;
    subscription = await deps.sql.listen(
      EVENTS_CHANNEL,
      () => {
        stats.notifications++;
        void catchUp();
      },
      () => {
        // Called on the first LISTEN and after every reconnect: read whatever was missed meanwhile.
        if (!first) {
          stats.reconnects++;
          log.info("event listener reconnected; catching up", { after: stats.lastSeq });
        }
        first = false;
        void catchUp();
      },
    );
  })();

  const poll = setInterval(() => void catchUp(), deps.pollMs ?? 5_000);

  return {
    stats,
    ready,
    catchUp,
    async stop() {
      running = false;
      clearInterval(poll);
      await ready.catch(() => {});
      await subscription?.unlisten().catch(() => {});
      await reading;
    },
  };
}
export type Listener = ReturnType<typeof startListener>;
