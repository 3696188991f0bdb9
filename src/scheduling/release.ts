/**
 * Puts released graph jobs into Redis: after the recorder's batch that released them has committed
 * (src/db/queries/graph-release.ts), each goes in as a parent-less BullMQ job whose completed
 * dependencies ride along as kept children results — where `getChildrenValues()` reads them, and
 * keyed for the handler's `ctx.parents` (see buildRedisTrees). Safe to repeat: the job id is the
 * row's, so a second add is a no-op. If the add never happens (a crash, Redis down), the rows are
 * `pending` and no longer held, which is what the enqueuer adds. Jobs woken from a join are promoted.
 */
import { Job } from "bullmq";
import type { Db } from "../db/client";
import { rowsWithDependencies } from "../db/queries/graph-rows";
import type { Logger } from "../log";
import type { Producer } from "../queues";
import { enqueueRows } from "../services/enqueue";

export async function addReleased(deps: { db: Db; producer: Producer; log: Logger }, released: string[]) {
  if (released.length === 0) return;
  const rows = await rowsWithDependencies(deps.db, released);
  const ids = new Set(released);
  // One add per flow (a flow lives on one shard); the rows of other flows are only dependencies.
  const byFlow = new Map<string, typeof rows>();
  for (const r of rows) byFlow.set(r.flowId, [...(byFlow.get(r.flowId) ?? []), r]);
  // Jobs parked on a join the batch ended (see src/services/spawn.ts): moved from delayed to waiting.
  // One that is not delayed (yet) checks its join itself right after it parks.
  const woken = rows.filter((r) => ids.has(r.id) && r.status === "active" && r.waitsOn !== null);
  await Promise.all(
    woken.map((r) =>
      new Job(deps.producer.at(r.shard).queue(r.queueName), r.name, {}, {}, r.jobId).promote().catch(() => {}),
    ),
  );
  for (const [flowId, flowRows] of byFlow) {
    const adding = new Set(flowRows.filter((r) => ids.has(r.id) && r.status === "pending").map((r) => r.id));
    if (adding.size === 0) continue;
    await enqueueRows(deps, flowRows, adding).catch((err) =>
      deps.log.warn("released graph jobs not yet in Redis; the enqueuer will add them", { flowId, err: String(err) }),
    );
  }
}
