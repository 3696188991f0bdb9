import type { Sql } from "postgres";
import type { Config } from "../config";
import type { Db } from "../db/client";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { noRepairs, reconcileLostJobs, type Repairs } from "../services/reconcile";
import { startLoop } from "./loop";

/** Any constant: the same for every flowd process on a database. */
const RECONCILER_LOCK = 7244119002;

/**
 * Runs the lost-jobs repair every `reconcileIntervalMs`, in one worker process at a time (a
 * session advisory lock taken per pass), leaving rows younger than the interval to the normal path.
 */
export function startReconciler(deps: { db: Db; sql: Sql; producer: Producer; log: Logger; config: Config }) {
  const log = deps.log.child({ component: "reconciler" });
  const totals: Repairs = noRepairs();
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
          for (const kind of Object.keys(totals) as (keyof Repairs)[]) totals[kind] += repairs[kind];
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
