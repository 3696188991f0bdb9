import type { Config } from "../config";
import type { Db } from "../db/client";
import { listHandlerRows, listLiveWorkers } from "../db/queries/registry";
import type { Producer } from "../queues";
import { withTimeout } from "../timeout";
import { builtinEntries, type HandlerSource } from "./handler-registry";

/** How often a worker process renews its row, and the age past which the row is a dead process. */
export const WORKER_HEARTBEAT_MS = 10_000;
export const WORKER_STALE_MS = 3 * WORKER_HEARTBEAT_MS;

export interface HandlerView {
  name: string;
  queue: string;
  source: HandlerSource;
  description: string | null;
  dataSchema: unknown;
  workers: number;
  lastSeenAt: string | null;
}

export interface WorkerView {
  id: string;
  host: string;
  pid: number | null;
  version: string | null;
  queues: string[];
  handlers: string[];
  concurrency: number | null;
  startedAt: string | null;
  lastSeenAt: string | null;
  /** `flowd`, or `external` for a BullMQ worker BullMQ itself reports connected to an external queue. */
  kind: "flowd" | "external";
}

/** Every handler known: built-ins, what workers registered (kept while they are down), with how many live workers serve each. */
export async function listHandlers(deps: { db: Db; config: Config }): Promise<HandlerView[]> {
  const [rows, live] = await Promise.all([listHandlerRows(deps.db), listLiveWorkers(deps.db, WORKER_STALE_MS)]);
  const serving = new Map<string, number>();
  for (const w of live) for (const key of w.handlers) serving.set(key, (serving.get(key) ?? 0) + 1);
  const byKey = new Map<string, HandlerView>();
  for (const e of builtinEntries(deps.config)) byKey.set(`${e.queue}:${e.name}`, { ...e, workers: 0, lastSeenAt: null });
  for (const r of rows)
    byKey.set(`${r.queue}:${r.name}`, {
      name: r.name,
      queue: r.queue,
      source: r.source as HandlerSource,
      description: r.description,
      dataSchema: r.dataSchema,
      workers: 0,
      lastSeenAt: r.lastSeenAt.toISOString(),
    });
  for (const [key, view] of byKey) view.workers = serving.get(key) ?? 0;
  return [...byKey.values()].sort((a, b) => a.queue.localeCompare(b.queue) || a.name.localeCompare(b.name));
}

/** flowd's live worker processes, then the BullMQ workers connected to external queues (as BullMQ's getWorkers sees them). */
export async function listWorkers(deps: { db: Db; config: Config; producer: Producer }): Promise<WorkerView[]> {
  const live = await listLiveWorkers(deps.db, WORKER_STALE_MS);
  const views: WorkerView[] = live.map((w) => ({
    id: w.id,
    host: w.host,
    pid: w.pid,
    version: w.version,
    queues: w.queues,
    handlers: w.handlers,
    concurrency: w.concurrency,
    startedAt: w.startedAt.toISOString(),
    lastSeenAt: w.lastSeenAt.toISOString(),
    kind: "flowd",
  }));
  for (const queue of deps.config.externalQueues) {
    const perShard = deps.producer.shards.map((shard) =>
      withTimeout(deps.producer.at(shard).queue(queue).getWorkers(), 2000, "listing a queue's workers").catch(() => []),
    );
    const connected = (await Promise.all(perShard)).flat();
    for (const c of connected as Record<string, string>[])
      views.push({
        id: c.id ?? c.name ?? "",
        host: c.addr ?? "",
        pid: null,
        version: null,
        queues: [queue],
        handlers: [],
        concurrency: null,
        startedAt: c.age ? new Date(Date.now() - Number(c.age) * 1000).toISOString() : null,
        lastSeenAt: new Date().toISOString(),
        kind: "external",
      });
  }
  return views;
}
