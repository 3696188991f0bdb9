/**
 * BullMQ twice: on the shared Redis (the baseline every ratio is taken against) and on its
 * PostgreSQL backend (`bullmq/dist/esm/postgres`, through the `pg` driver) in a database of its own.
 * The same classes, processor and concurrency on both.
 */
import { FlowProducer, Queue, QueueEvents, Worker, type Job } from "bullmq";
import { createPostgresBackend } from "bullmq/dist/esm/postgres";
import IORedis from "ioredis";
import { deletePrefix, uniquePrefix } from "../../test/helpers/redis";
import { REDIS_URL } from "../../test/helpers/services";
import { bullTree } from "../flows";
import { backendPids, completionWaits, onOwnDatabase, redisServerPid, type Peer, type Session } from "./session";

const QUEUE = "flows";

/** What flowd's `echo` returns: the job's data and, for a parent, its children's results. */
const processor = async (job: Job) => ({ data: job.data, children: job.data?.root ? await job.getChildrenValues() : {} });

interface Classes {
  queue: Queue;
  worker: Worker;
  producer: FlowProducer;
  events: () => QueueEvents;
  processes(): Promise<number[]>;
  cleanup(): Promise<void>;
}

async function redisClasses(concurrency: number): Promise<Classes> {
  const redisPid = await redisServerPid();
  const prefix = uniquePrefix("peers");
  const connection = () => new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  return {
    queue: new Queue(QUEUE, { connection: connection(), prefix }),
    worker: new Worker(QUEUE, processor, { connection: connection(), prefix, concurrency }),
    producer: new FlowProducer({ connection: connection(), prefix }),
    events: () => new QueueEvents(QUEUE, { connection: connection(), prefix }),
    processes: async () => [redisPid],
    cleanup: () => deletePrefix(prefix),
  };
}

function postgresClasses(concurrency: number): Promise<Classes> {
  return onOwnDatabase("bullmq", async (db) => {
    // `migrate: true` installs the schema on first connect (the documented way for a fresh database).
    const connection = () => ({ connectionString: db.url, migrate: true });
    const queue = new Queue(QUEUE, { connection: connection() }, createPostgresBackend);
    await queue.waitUntilReady();
    return {
      queue: queue as unknown as Queue,
      worker: new Worker(QUEUE, processor, { connection: connection(), concurrency }, createPostgresBackend) as unknown as Worker,
      producer: new FlowProducer({ connection: connection() }, createPostgresBackend) as unknown as FlowProducer,
      events: () => new QueueEvents(QUEUE, { connection: connection() }, createPostgresBackend) as unknown as QueueEvents,
      processes: () => backendPids(db.name),
      cleanup: () => db.drop(),
    };
  });
}

function bullmqSession(c: Classes): Session {
  let done = 0;
  const rootDone = completionWaits<string>();
  c.worker.on("completed", (job) => {
    done++;
    if (job.data?.root) rootDone.arrived(job.id!);
  });
  c.worker.on("error", (err) => console.error(`bullmq worker: ${err.message}`));
  let events: QueueEvents | undefined;
  const seen = completionWaits<string>();
  return {
    pollMs: 2,
    completed: async () => done,
    async createBatch(count, round) {
      await c.queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: "echo", data: { round, i } })));
    },
    async createOne(i) {
      await c.queue.add("echo", { i });
    },
    async flow(size) {
      const tree = bullTree(size);
      const finished = rootDone.wait(tree.opts!.jobId!, 120_000);
      await c.producer.add(tree);
      await finished;
    },
    async roundTrip(i) {
      if (!events) {
        events = c.events();
        events.on("completed", ({ jobId }) => seen.arrived(jobId));
        await events.waitUntilReady();
      }
      const t = performance.now();
      const job = await c.queue.add("echo", { latency: i });
      return (await seen.wait(job.id!)) - t;
    },
    processes: () => c.processes(),
    async stop() {
      await events?.close();
      await c.worker.close();
      await c.producer.close();
      await c.queue.close();
      await c.cleanup();
    },
  };
}

const common =
  "Worker concurrency 16, the processor returns what `echo` does; addBulk of 1,000, Queue.add, FlowProducer trees; " +
  "completed jobs kept (removeOnComplete off, BullMQ's default); completion = the Worker's `completed` event, QueueEvents for latency";

export const bullmqPeer: Peer = {
  key: "bullmq",
  label: "BullMQ (Redis)",
  settings: `${common}; Redis 127.0.0.1:6379 as the shared server runs it`,
  start: async (sizes) => bullmqSession(await redisClasses(sizes.concurrency)),
};

export const bullmqPgPeer: Peer = {
  key: "bullmq-pg",
  label: "BullMQ (Postgres)",
  settings: `${common}; createPostgresBackend({ connectionString, migrate: true }), pg's default pool (10) per class, LISTEN/NOTIFY wake-ups`,
  start: async (sizes) => bullmqSession(await postgresClasses(sizes.concurrency)),
};
