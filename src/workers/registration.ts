import { hostname } from "node:os";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { registerWorker, removeWorker, touchWorker } from "../db/queries/registry";
import type { LoadedHandler } from "../handlers/loader";
import { newId } from "../ids";
import type { Logger } from "../log";
import { consumedQueues } from "../queues";
import { builtinEntries, type HandlerEntry } from "../services/handler-registry";
import { VERSION } from "../version";
import { WORKER_HEARTBEAT_MS } from "../services/registry-views";


export const moduleEntries = (modules: readonly LoadedHandler[]): HandlerEntry[] =>
  modules.flatMap((h) => h.queues.map((queue) => ({ queue, name: h.name, source: "module" as const, description: h.description, dataSchema: h.dataSchema, defaults: h.defaults })));

/**
 * Records this process and the handlers it serves in Postgres (API processes validate new jobs
 * against that), then keeps a heartbeat. Registration is retried until it succeeds: a worker that
 * could not register still runs its jobs, only creates for its module handlers wait for it.
 */
export function startRegistration(deps: { db: Db; config: Config; modules: readonly LoadedHandler[]; queues: string[]; log: Logger }) {
  const { db, config, log } = deps;
  const id = newId();
  const entries = [...builtinEntries(config), ...moduleEntries(deps.modules)];
  const keys = entries.map((e) => `${e.queue}:${e.name}`);
  const worker = { id, host: hostname(), pid: process.pid, version: VERSION, queues: deps.queues, handlers: keys, concurrency: config.workerConcurrency };
  let registered = false;
  const beat = async () => {
    try {
      if (!registered) {
        await registerWorker(db, worker, entries);
        registered = true;
      } else if (!(await touchWorker(db, id, keys))) registered = false;
    } catch (err) {
      log.warn("could not record this worker in the handler registry; retrying", { err: String(err) });
    }
  };
  const first = beat();
  const timer = setInterval(() => void beat(), WORKER_HEARTBEAT_MS);
  timer.unref?.();
  log.debug("registering handlers", { workerId: id, queues: consumedQueues(config) });
  return {
    id,
    ready: first,
    async stop() {
      clearInterval(timer);
      await first;
      await removeWorker(db, id).catch((err) => log.warn("could not remove this worker from the registry", { err: String(err) }));
    },
  };
}
