import type { Logger } from "../log";
import type { PgQueues } from "../pg-queues";
import { createPgDoorbell, keepAllEvents, pgCursorName, pgFailureDetails, readPgEvents, trimRecorded } from "../services/pg-events";
import type { EventSource } from "./status-recorder";

/**
 * Events recorded are kept this long, for users' own QueueEvents on external queues, then deleted:
 * each read scans the queue's rows (their transaction ids are not indexed), so the table stays short.
 */
const KEEP_RECORDED_MS = 10_000;
/** How often recorded events are deleted, and BullMQ is told again to keep the rest. */
const HOUSEKEEPING_MS = 2_000;

/**
 * The status recorder's events on BullMQ's Postgres backend (src/services/pg-events.ts): read by
 * transaction, never trimmed before a committed cursor has passed them.
 */
export function createPgEventSource(deps: { pg: PgQueues; queues: readonly string[]; log: Logger }): EventSource & { close(): void } {
  const { pool, schema } = deps.pg;
  const doorbell = createPgDoorbell(pool);
  let lastHousekeeping = 0;
  // Per queue, the newest entry time handed on: a clock stepped back on the server must not make a
  // job's later event look older than its earlier one (the row guard orders them by time, then id).
  const lastMs = new Map<string, number>();
  const housekeeping = async () => {
    if (Date.now() - lastHousekeeping < HOUSEKEEPING_MS) return;
    lastHousekeeping = Date.now();
    try {
      const trimming = await keepAllEvents(pool, schema, deps.queues);
      if (trimming.length > 0)
        deps.log.warn("a BullMQ Queue opened elsewhere set these queues to trim their events; set back to keep them until recorded", { queues: trimming });
      await trimRecorded(pool, schema, deps.queues, KEEP_RECORDED_MS);
    } catch (err) {
      deps.log.debug("event housekeeping failed; will retry", { err: String(err) });
    }
  };
  return {
    cursorName: (queue) => pgCursorName(schema, queue),
    async read(cursors, limit) {
      await housekeeping();
      const events = await readPgEvents(pool, schema, cursors, limit);
      if (events.length === 0) return { entries: null, cursors: new Map() };
      const keyOf = new Map(cursors.map((c) => [c.queue, c.key]));
      const byKey = new Map<string, [string, string[]][]>();
      const next = new Map<string, string>();
      for (const e of events) {
        const key = keyOf.get(e.queue)!;
        let list = byKey.get(key);
        if (!list) byKey.set(key, (list = []));
        const [ms = "0", eventId = "0"] = e.id.split("-");
        const at = Math.max(Number(ms), lastMs.get(e.queue) ?? 0);
        lastMs.set(e.queue, at);
        list.push([`${at}-${eventId}`, e.flat]);
        next.set(key, e.cursor);
      }
      return { entries: [...byKey], cursors: next };
    },
    wait: (ms) => doorbell.wait(ms),
    failureDetails: (jobs) => pgFailureDetails(pool, schema, jobs),
    close: () => doorbell.close(),
  };
}
