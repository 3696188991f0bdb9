import type { JobRow } from "../db/queries/jobs";
import { withTimeout } from "../timeout";
import type { ServiceDeps } from "./deps";
import { ADD_TIMEOUT_MS } from "./enqueue";
import { bullOptions, resumeOptions } from "./flow-redis";
import { META_KEY, type JobMeta } from "./job-envelope";

/**
 * Adds the rows' jobs to Redis, one `addBulk` (one round trip, all or none) per queue; false (the
 * rows stay `pending` for the enqueuer) if Redis refused any. A plain add: a job without parent or
 * children needs none of the flow machinery. With `resumeAtMs`, the rows are jobs Redis lost, added
 * again as they stood at that time (see resumeOptions).
 */
export async function enqueueJobs(deps: Pick<ServiceDeps, "producer" | "log">, rows: JobRow[], resumeAtMs?: number): Promise<boolean> {
  // One addBulk per shard and queue: a MULTI stays within one hash slot.
  const byQueue = new Map<string, JobRow[]>();
  for (const row of rows) {
    const key = `${row.shard}\0${row.queueName}`;
    const queued = byQueue.get(key);
    if (queued) queued.push(row);
    else byQueue.set(key, [row]);
  }
  const adds = [...byQueue.values()].map((queued) => {
    const queue = deps.producer.at(queued[0]!.shard).queue(queued[0]!.queueName);
    const jobs = queued.map((row) => {
      const resumed = resumeAtMs === undefined ? undefined : resumeOptions(row, resumeAtMs);
      const meta: JobMeta = resumed?.meta ?? (row.attemptsMade > 0 ? { attemptsBefore: row.attemptsMade } : {});
      return { name: row.name, data: row.data, opts: { ...bullOptions(row.opts, row.jobId, false), ...resumed?.opts, [META_KEY]: meta } };
    });
    // A lone job goes as one script call: addBulk's pipeline first copies every BullMQ script (64)
    // onto a fresh object, about a tenth of the API's CPU for a create that arrives alone.
    const [only] = jobs;
    return jobs.length === 1 && only ? queue.add(only.name, only.data, only.opts) : queue.addBulk(jobs);
  });
  return withTimeout(Promise.all(adds), ADD_TIMEOUT_MS, "adding jobs").then(
    () => true,
    (err) => {
      deps.log.warn("jobs accepted but not yet in Redis; the enqueuer will add them", { jobIds: rows.slice(0, 10).map((r) => r.id), count: rows.length, err: String(err) });
      return false;
    },
  );
}
