/** graphile-worker in a database of its own, with its documented batching (local queue, batched completions). */
import { EventEmitter } from "node:events";
import { Logger, makeWorkerUtils, run, type WorkerEvents } from "graphile-worker";
import { backendPids, completionWaits, onOwnDatabase, type Peer, type Session } from "./session";

const TASK = "echo";
const quiet = new Logger(() => () => {});

export const graphilePeer: Peer = {
  key: "graphile",
  label: "graphile-worker",
  settings:
    "run({ concurrency: 16 }) with preset.worker { localQueue: { size: 64 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }, pool 10; " +
    "WorkerUtils.addJobs of 1,000 and addJob from a pool of their own; no flows (it has no dependencies between jobs); " +
    "finished jobs are deleted (no history); completion = its `job:complete` event (emitted once the result is written back)",
  start: (sizes) => onOwnDatabase("graphile", async (db): Promise<Session> => {
    const events = new EventEmitter() as WorkerEvents;
    let done = 0;
    const seen = completionWaits<string>();
    events.on("job:complete", ({ job, error }) => {
      if (error) return;
      done++;
      seen.arrived(job.id);
    });
    const runner = await run({
      connectionString: db.url,
      concurrency: sizes.concurrency,
      noHandleSignals: true,
      logger: quiet,
      events,
      taskList: { [TASK]: async () => {} },
      preset: { worker: { localQueue: { size: 64 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    });
    const utils = await makeWorkerUtils({ connectionString: db.url, logger: quiet });
    return {
      pollMs: 2,
      completed: async () => done,
      async createBatch(count, round) {
        await utils.addJobs(Array.from({ length: count }, (_, i) => ({ identifier: TASK, payload: { round, i } })));
      },
      async createOne(i) {
        await utils.addJob(TASK, { i });
      },
      async roundTrip(i) {
        const t = performance.now();
        const job = await utils.addJob(TASK, { latency: i });
        return (await seen.wait(job.id)) - t;
      },
      processes: () => backendPids(db.name),
      async stop() {
        await utils.release();
        await runner.stop();
        await db.drop();
      },
    };
  }),
};
