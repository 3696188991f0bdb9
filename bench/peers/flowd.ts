/** flowd as `bench jobs` and `bench flows` run it: an API and a worker process on one database and prefix. */
import { startCluster } from "../../test/helpers/cluster";
import { connectWs, type WsClient } from "../../test/helpers/ws-client";
import { flowdTree } from "../flows";
import { backendPids, completionWaits, redisServerPid, type Peer, type Session } from "./session";

export const flowdPeer: Peer = {
  key: "flowd",
  label: "flowd",
  settings:
    "an API and a worker process (FLOWD_BIN's binary if set, else the sources), WORKER_CONCURRENCY=16, built-in `echo`; " +
    "bulk through POST /v1/jobs/bulk (1,000 a request), singles POST /v1/jobs, flows POST /v1/flows then GET ?wait=60; " +
    "completion = Postgres says completed (bulk, singles), the flow's status (flows), the socket's job.updated (latency)",
  async start(sizes): Promise<Session> {
    const cluster = await startCluster({ apis: 1, workers: 1, tag: "peers", env: { WORKER_CONCURRENCY: String(sizes.concurrency) } });
    const api = cluster.apis[0]!;
    const sql = cluster.database.sql;
    const post = async (path: string, body: unknown) => {
      const res = await api.http("POST", path, body);
      if (res.status !== 201) throw new Error(`POST ${path} answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
      return res.body;
    };
    let socket: WsClient | undefined;
    const arrivals = completionWaits<string>();
    const dbName = new URL(cluster.env.DATABASE_URL!).pathname.slice(1);
    const redisPid = await redisServerPid();
    return {
      pollMs: 25,
      async completed() {
        return (await sql<{ n: number }[]>`select count(*)::int as n from jobs where status = 'completed'`)[0]!.n;
      },
      async createBatch(count, round) {
        await post("/v1/jobs/bulk", { jobs: Array.from({ length: count }, (_, i) => ({ name: "echo", data: { round, i } })) });
      },
      async createOne(i) {
        await post("/v1/jobs", { name: "echo", data: { i } });
      },
      async flow(size) {
        const created = await post("/v1/flows", flowdTree(size));
        let status = created.status;
        while (status === "running") status = (await api.http("GET", `/v1/flows/${created.id}?wait=60`)).body.status;
        if (status !== "completed") throw new Error(`flowd flow ended ${status}`);
      },
      async roundTrip(i) {
        if (!socket) {
          // Subscribed only for this phase: a socket fed 20,000 events during the bulk would be work of its own.
          socket = await connectWs(api.wsUrl, cluster.token);
          const push = socket.messages.push.bind(socket.messages);
          socket.messages.push = (...items: any[]) => {
            for (const m of items)
              if (m.type === "event" && m.event === "job.updated" && m.status === "completed" && m.data?.id) arrivals.arrived(m.data.id);
            return push(...items);
          };
          socket.send({ op: "subscribe", all: true });
          await socket.next((m) => m.type === "subscribed");
        }
        const t = performance.now();
        const job = await post("/v1/jobs", { name: "echo", data: { latency: i } });
        return (await arrivals.wait(job.id)) - t;
      },
      async processes() {
        return [...cluster.apis.map((a) => a.proc.proc.pid), ...cluster.workers.map((w) => w.proc.pid), ...(await backendPids(dbName)), redisPid];
      },
      async stop() {
        socket?.close();
        await cluster.stop();
      },
    };
  },
};
