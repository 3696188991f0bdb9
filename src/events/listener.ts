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
 * While no socket here is subscribed it reads only flow-level events (what long-polls need), and
 * not even those for a doorbell that rang for flow jobs' updates alone (payload `j<seq>`); while no
 * long-poll waits either it reads nothing: it moves to the seq the doorbell named. Anyone starting
 * to listen during a read that skipped events makes it read the same range again, in full.
 */
export function startListener(deps: {
  db: Db;
  sql: Sql;
  log: Logger;
  hub: Pick<Hub, "publish" | "hasSubscribers" | "joins">;
  /**
   * Long-polls in progress in this process (`waiting`) and how many ever began (`began`): while
   * none waits and no socket is subscribed, nobody here needs the events themselves.
   */
  longPolls: { readonly waiting: number; readonly began: number };
  pollMs?: number;
}) {
  const log = deps.log.child({ component: "listener" });
  const stats = { lastSeq: 0, reads: 0, notifications: 0, reconnects: 0, lagMs: 0 };
  let running = true;
  let reading: Promise<void> | null = null;
  // Set and cleared in step with the read loop (a loop that skips ends in the same tick, before its
  // promise settles), so a doorbell right after one never finds a loop that will not look again.
  let busy = false;
  let again = false;
  // The highest seq any doorbell named (its payload), and the highest of doorbells for more than a
  // flow's job updates ('j' marks those): how far the log is committed, known without a read.
  let rung = 0;
  let rungForAll = 0;
  const { longPolls } = deps;

  /**
   * Where the log may be passed without a read: the doorbell's seq when nobody here wants events,
   * or when only long-polls wait and every doorbell since the last read was for flow jobs' updates.
   */
  const skipTo = (everything: boolean, flowLevel: boolean): number => {
    if (everything || rung <= stats.lastSeq) return 0;
    if (!flowLevel) return rung;
    return rungForAll <= stats.lastSeq ? rung : 0;
  };

  /** One reader at a time; a ring during a read schedules exactly one more read. */
  const catchUp = (): Promise<void> => {
    if (busy) {
      again = true;
      return reading!;
    }
    busy = true;
    reading = (async () => {
      try {
        do {
          again = false;
          for (;;) {
            const everything = deps.hub.hasSubscribers;
            const flowLevel = !everything && longPolls.waiting > 0;
            const interest = deps.hub.joins + longPolls.began;
            const passTo = skipTo(everything, flowLevel);
            if (passTo > 0) {
              // Nobody here wants these events: every one up to the doorbell's seq is committed, so a
              // socket or long-poll that starts later finds it in the log or in the row it reads.
              stats.lastSeq = passTo;
              deps.hub.publish([], passTo);
              break;
            }
            const { events, upTo } = everything
              ? await fullPage(stats.lastSeq)
              : flowLevel
                ? await flowLevelEventsAfter(deps.db, stats.lastSeq, PAGE)
                : { events: [], upTo: await maxEventSeq(deps.db) };
            stats.reads++;
            // A socket joined or a long-poll began meanwhile: read the range again, all it needs.
            if (!everything && deps.hub.joins + longPolls.began !== interest) continue;
            const last = events[events.length - 1];
            if (last) stats.lagMs = Date.now() - Date.parse(last.at);
            if (upTo <= stats.lastSeq) break;
            stats.lastSeq = upTo;
            deps.hub.publish(events, upTo);
            if (events.length < PAGE) break;
          }
        } while (again && running);
      } catch (err) {
        log.warn("cannot read the event log; will retry", { err: String(err) });
      } finally {
        busy = false;
      }
    })();
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
      (payload: string) => {
        stats.notifications++;
        const flowJobsOnly = payload.startsWith("j");
        const seq = Number(flowJobsOnly ? payload.slice(1) : payload);
        if (Number.isSafeInteger(seq)) {
          rung = Math.max(rung, seq);
          if (!flowJobsOnly) rungForAll = Math.max(rungForAll, seq);
        }
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
