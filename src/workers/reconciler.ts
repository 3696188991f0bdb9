import type { Sql } from "postgres";
import type { Config } from "../config";
import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { noRepairs, reconcileLostJobs, type Repairs } from "../services/reconcile";
import { pruneEndedDeliveries, reconcileLostDeliveries } from "../services/reconcile-deliveries";
import { startLoop } from "./loop";

/** Any constant: the same for every flowd process on a database. */
const RECONCILER_LOCK = 7244119002;

/**
 * Runs the lost-jobs and lost-deliveries repair every `reconcileIntervalMs`, in one worker process at a time (a
 * session advisory lock taken per pass), leaving rows younger than the interval to the normal path.
 */
export function startReconciler(deps: { db: Db; sql: Sql; producer: Producer; log: Logger; config: Config }) {
  const log = deps.log.child({ component: "reconciler" });
  // Webhook deliveries re-added count beside the jobs, as one more kind of repair.
  const totals: Repairs & { deliveriesRequeued: number } = { ...noRepairs(), deliveriesRequeued: 0 };
  const graceMs = Math.min(deps.config.reconcileIntervalMs, 5_000);
  const page = { after: "" };
  const loop = startLoop(
    deps.config.reconcileIntervalMs,
    async () => {
      const conn = await deps.sql.reserve();
      try {
        const [got] = await conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${RECONCILER_LOCK}) as ok`;
        if (!got?.ok) return;
        try {
          const repairs = await reconcileLostJobs({ ...deps, log }, graceMs, page);
          const deliveries = await reconcileLostDeliveries(deps, graceMs);
          totals.deliveriesRequeued += deliveries;
          if (deliveries > 0) log.warn("webhook deliveries Redis had lost are queued again", { deliveries });
          await pruneEndedDeliveries(deps);
          for (const kind of Object.keys(repairs) as (keyof Repairs)[]) totals[kind] += repairs[kind];
        } finally {
          await conn`select pg_advisory_unlock(${RECONCILER_LOCK})`;
        }
      } finally {
        conn.release();
      }
    },
    (err) => log.debug("reconcile pass failed; will retry", { err: String(err) }),
  );
  return { totals, stop: loop.stop };
}
