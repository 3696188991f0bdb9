import type { Sql } from "postgres";
import type { Config } from "../config";
import { EVENTS_CHANNEL } from "../event-types";
import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { DISPATCH_BATCH, dispatchWebhooks } from "../services/webhook-dispatch";
import { anyEnabledWebhook, ensureDispatchCursor, skipDispatchCursorToEnd } from "../db/queries/webhooks";
import { msUntilNextDue } from "../db/queries/webhook-outbox";
import { startLoop } from "./loop";

/** The least time between two passes the doorbell asks for. */
const DOORBELL_GAP_MS = 20;
/** While no webhook is enabled, how often the cursor is moved to the end of the log. */
const IDLE_CURSOR_MS = 5_000;

/**
 * Turns the event log into outbox rows and hands due rows to Redis within their slots; any number
 * of workers may run it (the cursor row serialises them). It wakes on the event log's NOTIFY (the
 * doorbell the triggers ring for every new event), so a delivery leaves within milliseconds of its
 * event's commit; on `wake()` when a delivery of this process ends (its slot is free); and at the
 * next retry's due time. The poll is only the safety net (a missed ring, another process's slot).
 */
export function startWebhookDispatcher(deps: { db: Db; sql: Sql; producer: Producer; log: Logger; config: Config }, intervalMs = 1_000) {
  const log = deps.log.child({ component: "webhook-dispatcher" });
  let started = false;
  let idleMovedAt = 0;
  let dueTimer: ReturnType<typeof setTimeout> | undefined;
  const loop = startLoop(
    intervalMs,
    async () => {
      if (!started) {
        await ensureDispatchCursor(deps.db);
        started = true;
      }
      // No webhook, nothing to claim: a look instead of a claiming transaction and a cursor write
      // on every doorbell (each a commit that Postgres flushes, under a burst fifty a second).
      if (!(await anyEnabledWebhook(deps.db))) {
        if (Date.now() - idleMovedAt >= IDLE_CURSOR_MS) {
          await skipDispatchCursorToEnd(deps.db);
          idleMovedAt = Date.now();
        }
        return;
      }
      idleMovedAt = 0;
      // Drain: a full batch means more is waiting.
      for (;;) {
        const pass = await dispatchWebhooks(deps);
        // Another process holds the cursor right now; go round again soon so this ring is served.
        if (pass.busy) return loop.wake();
        if (pass.events < DISPATCH_BATCH) break;
      }
      const dueIn = await msUntilNextDue(deps.db);
      clearTimeout(dueTimer);
      if (dueIn !== null && dueIn < intervalMs) dueTimer = setTimeout(() => loop.wake(), Math.max(dueIn, 1));
    },
    (err) => log.warn("webhook dispatch failed; will retry", { err: String(err) }),
    // Under a burst the triggers ring for every batch: one pass per 20 ms serves them all.
    DOORBELL_GAP_MS,
  );
  // On the first LISTEN and after each reconnect, a pass picks up whatever was missed meanwhile.
  const subscription = deps.sql.listen(EVENTS_CHANNEL, () => loop.wake(), () => loop.wake()).catch((err) => {
    log.warn("could not listen for new events; webhooks go out on the poll only", { err: String(err) });
    return null;
  });
  return {
    /** A delivery ended: its slot is free for the next due row. */
    wake: () => loop.wake(),
    async stop() {
      clearTimeout(dueTimer);
      await (await subscription)?.unlisten().catch(() => {});
      await loop.stop();
    },
  };
}
