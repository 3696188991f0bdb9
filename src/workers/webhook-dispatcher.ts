import type { Config } from "../config";
import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { dispatchWebhooks } from "../services/webhooks";
import { startLoop } from "./loop";

/** Turns the event log into webhook deliveries; any number of workers may run it (the cursor row serialises them). */
export function startWebhookDispatcher(deps: { db: Db; producer: Producer; log: Logger; config: Config }, intervalMs = 250) {
  const log = deps.log.child({ component: "webhook-dispatcher" });
  return startLoop(
    intervalMs,
    async () => {
      // Drain: a full batch means more is waiting.
      while ((await dispatchWebhooks(deps)) >= 500);
    },
    (err) => log.warn("webhook dispatch failed; will retry", { err: String(err) }),
  );
}
