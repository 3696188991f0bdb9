/**
 * Puts released graph jobs into Redis: after the recorder's batch that released them has committed
 * (src/db/queries/graph-release.ts), each goes in as a parent-less BullMQ job whose completed
 * dependencies ride along as kept children results — where `getChildrenValues()` reads them, and
 * keyed for the handler's `ctx.parents` (see buildRedisTrees). Safe to repeat: the job id is the
 * row's, so a second add is a no-op. The recorder's batch writes the rows it releases at their
 * queued status (graph-release.ts); an add that fails puts them back to `pending`, which is what the
 * enqueuer adds, and one a crash never made is the reconciler's. Jobs woken from a join are promoted.
 */
import { Job } from "bullmq";
import type { Db } from "../db/client";
import { markFlowJobsUnqueued, rowsWithDependencies } from "../db/queries/graph-rows";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { enqueueRows } from "../services/enqueue";
import { HOLD_DELAY_MS } from "../services/flow-redis";
import { delayedUntil } from "../services/bull-data";
import type { JobOpts } from "../job-opts";

const RELEASED: ReadonlySet<string> = new Set(["pending", "waiting", "delayed"]);

export async function addReleased(deps: { db: Db; producer: Producer; log: Logger }, released: string[]) {
  if (released.length === 0) return;
  const rows = await rowsWithDependencies(deps.db, released);
  const ids = new Set(released);
  // One add per flow (a flow lives on one shard); the rows of other flows are only dependencies.
  const byFlow = new Map<string, typeof rows>();
  for (const r of rows) {
    const list = byFlow.get(r.flowId);
    if (list) list.push(r);
    else byFlow.set(r.flowId, [r]);
  }
  // Jobs parked on a join the batch ended (see src/services/spawn.ts): moved from delayed to waiting.
  // One that is not delayed (yet) checks its join itself right after it parks.
  const woken = rows.filter((r) => ids.has(r.id) && r.status === "active" && r.waitsOn !== null);
  await Promise.all(
    woken.map((r) =>
      new Job(deps.producer.at(r.shard).queue(r.queueName), r.name, {}, {}, r.jobId).promote().catch(() => {}),
    ),
  );
  // A tree's jobs let go by a limits pass are in Redis already, parked: promoted (see flow-redis.ts).
  const parked = rows.filter((r) => ids.has(r.id) && r.key === null && r.status === "pending" && !r.waitingFor);
  await Promise.all(parked.map((r) => releaseParked(deps.producer, r).catch(() => {})));
  for (const [flowId, flowRows] of byFlow) {
    // Released graph rows: `pending` (spawned, or let go by a limit pass) or written at their queued status by the recorder's batch.
    const adding = new Set(flowRows.filter((r) => ids.has(r.id) && r.key !== null && !r.waitingFor && RELEASED.has(r.status)).map((r) => r.id));
    if (adding.size === 0) continue;
    await enqueueRows(deps, flowRows, adding).catch(async (err) => {
      deps.log.warn("released graph jobs not yet in Redis; the enqueuer will add them", { flowId, err: String(err) });
      await markFlowJobsUnqueued(deps.db, [...adding]).catch(() => {});
    });
  }
}

type ParkedRow = { shard: number | null; queueName: string; name: string; jobId: string; opts: JobOpts };

/**
 * Lets go of a tree's job parked for its limits: from BullMQ's delayed set to waiting, or, when its
 * own `opts.delay` asks for one, delayed by that from now (a released single or graph job's delay
 * also runs from its release). Throws when the job is not delayed (not parked, or let go already).
 */
export async function releaseParked(producer: Producer, row: ParkedRow) {
  const job = new Job(producer.at(row.shard).queue(row.queueName), row.name, {}, {}, row.jobId);
  if ((row.opts.delay ?? 0) > 0) await job.changeDelay(row.opts.delay!);
  else await job.promote();
}

/**
 * The enqueuer's look at a tree's jobs a pass let go whose promote was lost (the process died after
 * the pass committed): still at their hold's far-off time in BullMQ's delayed set, they are let go
 * now. One let go already, or delayed for its own `opts.delay`, is due much sooner and left alone.
 */
export async function releaseStillParked(producer: Producer, rows: ParkedRow[]): Promise<number> {
  let n = 0;
  for (const r of rows) {
    const due = await delayedUntil(producer, r.shard, r.queueName, r.jobId);
    if (due === null || due - Date.now() < HOLD_DELAY_MS / 2) continue;
    await releaseParked(producer, r).then(() => n++, () => {});
  }
  return n;
}
