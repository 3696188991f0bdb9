import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { reconcileSchedules } from "../services/schedules";
import { pruneOldEvents } from "../services/publish";
import { startLoop } from "./loop";

/**
 * Keeps Redis's job schedulers in line with the schedules table: at start-up and then every
 * `intervalMs`, any schedule Redis has lost (a flush, a fresh Redis) is registered again, and
 * published events past their retention are forgotten.
 */
export function startScheduleKeeper(deps: { db: Db; producer: Producer; log: Logger }, intervalMs = 15_000) {
  const log = deps.log.child({ component: "schedule-keeper" });
  return startLoop(intervalMs, async () => {
    await reconcileSchedules({ ...deps, log });
    await pruneOldEvents(deps.db);
  }, (err) => log.debug("schedule check failed; will retry", { err: String(err) }));
}
