import type { Db } from "../db/client";
import { flowJobsOf, flowsWithPendingJobs } from "../db/queries/flows";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { enqueueRows } from "../services/enqueue";
import type { EnqueueRow } from "../services/flow-redis";

/**
 * Adds to Redis what Postgres accepted but Redis did not get (Redis was down, or the API stopped
 * between commit and add). Rows are left alone for `graceMs` so the API's own add goes first.
 */
export function startEnqueuer(deps: { db: Db; producer: Producer; log: Logger }, opts = { intervalMs: 1_000, graceMs: 3_000 }) {
  const log = deps.log.child({ component: "enqueuer" });
  let running = true;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (running) {
      try {
        const flowIds = await flowsWithPendingJobs(deps.db, opts.graceMs, 50);
        for (const flowId of flowIds) {
          const rows = (await flowJobsOf(deps.db, flowId)) as EnqueueRow[];
          // Rows stay `pending` until the recorder reads their events: if the top job is in Redis
          // already, the recorder is only behind and there is nothing to add.
          const top = rows.find((r) => r.status === "pending" && !rows.some((p) => p.id === r.parentId && p.status === "pending"));
          if (!top || (await deps.producer.queue(top.queueName).getJobState(top.jobId)) !== "unknown") continue;
          if (await enqueueRows(deps, rows)) log.info("enqueued pending flow", { flowId });
        }
      } catch (err) {
        log.debug("enqueue pass failed; will retry", { err: String(err) });
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, opts.intervalMs);
      });
    }
  })();
  return {
    async stop() {
      running = false;
      wake();
      await loop;
    },
  };
}
