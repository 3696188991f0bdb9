import type { Db } from "../db/client";
import { flowJobsOf, flowsWithPendingJobs } from "../db/queries/flows";
import { pendingJobs } from "../db/queries/jobs";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { enqueueRows } from "../services/enqueue";
import { addable, mayEnter } from "../services/flow-redis";
import { releaseStillParked } from "../scheduling/release";
import { releaseStaleHolds } from "../db/queries/graph-rows";
import { enqueueJob, enqueueJobs } from "../services/jobs";
import { releaseDebounced } from "../db/queries/debounce";
import { expireOverdue } from "../services/expiry";
import { wakeStaleJoins } from "../db/queries/spawn";
import { Job } from "bullmq";
import { startLoop } from "./loop";
import { releaseAndAdd } from "../scheduling/limit-release";
import type { Shard } from "../shards";

/**
 * Adds to Redis what Postgres accepted but Redis did not get (Redis was down, or the API stopped
 * between commit and add). Rows are left alone for `graceMs` so the API's own add goes first.
 * Rows stay `pending` until the recorder reads their events, so a job already in Redis is skipped:
 * the recorder is only behind.
 */
export function startEnqueuer(deps: { db: Db; producer: Producer; log: Logger }, opts = { intervalMs: 1_000, graceMs: 3_000 }) {
  const log = deps.log.child({ component: "enqueuer" });
  const inRedis = async (row: { queueName: string; jobId: string; shard: Shard }) =>
    (await deps.producer.at(row.shard).queue(row.queueName).getJobState(row.jobId)) !== "unknown";

  const missingFromRedis = async <R extends { queueName: string; jobId: string; shard: Shard }>(rows: R[]) => {
    const present = await Promise.all(rows.map(inRedis));
    return rows.filter((_, i) => !present[i]);
  };

  return startLoop(
    opts.intervalMs,
    async () => {
      // Held graph jobs nothing released although their dependencies are done (a retry raced the
      // recorder): released here, then added below with the other released rows.
      const stale = await releaseStaleHolds(deps.db, opts.graceMs, 200);
      if (stale.length > 0) log.info("released held graph jobs whose dependencies were done", { count: stale.length });
      // Jobs parked on a join that ended without waking them (see src/services/spawn.ts): woken here.
      const joins = await wakeStaleJoins(deps.db, opts.graceMs, 200);
      for (const row of joins) await new Job(deps.producer.at(row.shard).queue(row.queueName), "", {}, {}, row.jobId).promote().catch(() => {});
      if (joins.length > 0) log.info("woke jobs whose joins had ended", { count: joins.length });
      for (const flowId of await flowsWithPendingJobs(deps.db, opts.graceMs, 50)) {
        const rows = await flowJobsOf(deps.db, flowId);
        if (rows.some((r) => r.key !== null)) {
          // A graph: each job released (no longer held) but not in Redis goes in on its own.
          const missing = await missingFromRedis(rows.filter(mayEnter));
          if (missing.length > 0 && (await enqueueRows(deps, rows, new Set(missing.map((r) => r.id)))))
            log.info("enqueued released graph jobs", { flowId, count: missing.length });
          continue;
        }
        // A tree's jobs a limits pass let go whose promote was lost: let go now (src/scheduling/release.ts).
        const parked = await releaseStillParked(deps.producer, rows.filter((r) => mayEnter(r) && (r.concurrencyKeys !== null || r.rateKey !== null)));
        if (parked > 0) log.info("let go of tree jobs released for their limits", { flowId, count: parked });
        // A tree's add failed: the whole tree goes in, its jobs held for their limits parked.
        const pendingIds = new Set(rows.filter(addable).map((r) => r.id));
        const top = rows.find((r) => pendingIds.has(r.id) && !pendingIds.has(r.parentId ?? ""));
        if (!top || (await inRedis(top))) continue;
        if (await enqueueRows(deps, rows)) log.info("enqueued pending flow", { flowId });
      }
      // Debounced jobs whose window ended go in now; one whose add fails is a plain pending row below.
      const ended = await releaseDebounced(deps.db, 200);
      const debounced = ended.filter((r) => r.waitingFor === null);
      if (debounced.length > 0 && (await enqueueJobs({ ...deps, log }, debounced))) log.info("enqueued debounced jobs", { count: debounced.length });
      // Those under per-key limits wait their turn like any limited job: a pass for their users now.
      for (const userId of new Set(ended.filter((r) => r.waitingFor !== null).map((r) => r.userId)))
        await releaseAndAdd({ ...deps, log }, userId, ended.filter((r) => r.userId === userId).map((r) => r.opts));
      // Jobs past their expireAfterMs that no worker took: failed with code `expired` (services/expiry.ts).
      // Its own failure must not hold back the adds below.
      await expireOverdue({ ...deps, log }).catch((err) => log.warn("expiry sweep failed; will retry", { err: String(err) }));
      for (const job of await pendingJobs(deps.db, opts.graceMs, 200)) {
        if (await inRedis(job)) continue;
        if (await enqueueJob({ ...deps, log }, job)) log.info("enqueued pending job", { jobId: job.id });
      }
    },
    (err) => log.debug("enqueue pass failed; will retry", { err: String(err) }),
  );
}
