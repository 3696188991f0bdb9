/** pg-boss in a database of its own, LISTEN/NOTIFY on, one batch worker: its documented fast path. */
import { PgBoss } from "pg-boss";
import postgres from "postgres";
import { backendPids, onOwnDatabase, type Peer, type Session } from "./session";

const QUEUE = "echo";

export const pgBossPeer: Peer = {
  key: "pg-boss",
  label: "pg-boss",
  settings:
    "useListenNotify + queue notify, work({ batchSize: 16, localConcurrency: 1, burstWhenBatchFull: true, polling 0.5 s (its minimum) }), " +
    "flowIntervalSeconds 1 (its minimum: a flow's dependents are unblocked by that background pass, not by the completion), pool max 10; " +
    "insert() of 1,000, send(), flow() with the root depending on its children; completed jobs kept (its default 7 days); " +
    "completion = state 'completed' in its table (no push signal to other clients: the latency client polls the job's row every 2 ms)",
  start: (sizes) => onOwnDatabase("pgboss", async (db): Promise<Session> => {
    const boss = new PgBoss({ connectionString: db.url, useListenNotify: true, max: 10, schedule: false, flowIntervalSeconds: 1 });
    boss.on("error", (err) => console.error(`pg-boss: ${err.message}`));
    await boss.start();
    await boss.createQueue(QUEUE, { notify: true });
    const table = (await boss.getQueue(QUEUE))!.table;
    await boss.work(QUEUE, { batchSize: sizes.concurrency, localConcurrency: 1, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }, async (jobs) =>
      jobs.map((j) => j.data),
    );
    // The bench's own reads, on a connection of their own like a client's.
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const state = async (id: string) =>
      (await sql<{ state: string }[]>`select state::text from ${sql("pgboss")}.${sql(table)} where name = ${QUEUE} and id = ${id}`)[0]?.state;
    const completedState = async (id: string, everyMs: number) => {
      for (;;) {
        const s = await state(id);
        if (s === "completed") return performance.now();
        if (s === "failed" || s === "cancelled") throw new Error(`pg-boss job ${id} ended ${s}`);
        await Bun.sleep(everyMs);
      }
    };
    return {
      pollMs: 25,
      async completed() {
        return (await sql<{ n: number }[]>`select count(*)::int as n from ${sql("pgboss")}.${sql(table)} where name = ${QUEUE} and state = 'completed'`)[0]!.n;
      },
      async createBatch(count, round) {
        await boss.insert(QUEUE, Array.from({ length: count }, (_, i) => ({ data: { round, i } })));
      },
      async createOne(i) {
        await boss.send(QUEUE, { i });
      },
      async flow(size) {
        const children = Array.from({ length: size - 1 }, (_, i) => ({ ref: `c${i}`, name: QUEUE, data: { i } }));
        const ids = await boss.flow([...children, { ref: "root", name: QUEUE, data: { root: true }, dependsOn: children.map((c) => c.ref) }]);
        await completedState(ids.root!, 10);
      },
      async roundTrip(i) {
        const t = performance.now();
        const id = await boss.send(QUEUE, { latency: i });
        return (await completedState(id!, 2)) - t;
      },
      processes: () => backendPids(db.name),
      async stop() {
        await sql.end({ timeout: 1 });
        await boss.stop({ graceful: true, timeout: 10_000 });
        await db.drop();
      },
    };
  }),
};
