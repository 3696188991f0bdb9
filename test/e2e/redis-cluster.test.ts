import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startRedisCluster, type RedisCluster } from "../helpers/redis-cluster";
import { startCountingReceiver } from "../helpers/receiver";
import { waitFor } from "../helpers/wait";

// flowd on a real Redis Cluster (six redis-servers on loopback, three masters with a replica
// each), with its keys sharded over FLOWD_SHARDS hash-tagged prefixes.
let redis: RedisCluster;
const receiver = startCountingReceiver();
beforeAll(async () => {
  redis = await startRedisCluster();
}, 60_000);
afterAll(async () => {
  await redis?.stop();
  receiver.stop();
});

const clusterEnv = (shards: number) => ({ REDIS_CLUSTER_NODES: redis.nodesEnv, FLOWD_SHARDS: String(shards), FLOWD_RECONCILE_INTERVAL_MS: "2000" });

/** A flow of three http jobs (a root and two children), each posting to a path of its own: the receiver counts every run. */
const flow = (key: string) => ({
  name: `f-${key}`,
  root: {
    name: "http",
    data: { url: receiver.url(`/${key}/root`), method: "POST" },
    children: [1, 2].map((c) => ({ name: "http", data: { url: receiver.url(`/${key}/c${c}`), method: "POST" } })),
  },
});

const unfinishedFlows = async (c: Cluster) =>
  (await c.database.sql<{ n: number }[]>`select count(*)::int as n from flows where status <> 'completed'`)[0]!.n;

/** Every job row ran exactly once, by the receiver's count. */
async function expectEachJobRanOnce(c: Cluster) {
  const rows = await c.database.sql<{ url: string; status: string }[]>`select data->>'url' as url, status from flow_jobs`;
  expect(rows.every((r) => r.status === "completed")).toBe(true);
  const runs = rows.map((r) => receiver.hits.get(new URL(r.url).pathname) ?? 0);
  expect(runs.filter((n) => n !== 1)).toEqual([]);
}

describe("flowd on a Redis Cluster with FLOWD_SHARDS=3", () => {
  test("flows complete, every master holds keys, and each of two worker processes records a shard", async () => {
    // Three hash tags land on three masters only by chance (2 in 9): take a prefix whose shards do.
    let prefix = "";
    for (let i = 0; !prefix; i++) {
      const owners = await Promise.all([0, 1, 2].map((n) => redis.ownerOf(`{rcp${i}-${n}}`)));
      if (new Set(owners).size === 3) prefix = `rcp${i}`;
    }
    const c = await startCluster({ apis: 1, workers: 0, tag: "rc", env: { ...clusterEnv(3), FLOWD_PREFIX: prefix } });
    try {
      const w1 = await c.startWorkerWithHealthPort();
      const w2 = await c.startWorkerWithHealthPort();
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await c.apis[0]!.http("POST", "/v1/flows", flow(`a${i}`));
        expect(res.status).toBe(201);
        ids.push(res.body.id);
      }
      await waitFor(async () => (await unfinishedFlows(c)) === 0, 60_000, "30 flows completed");
      await expectEachJobRanOnce(c);
      const shards = await c.database.sql<{ shard: number; n: number }[]>`select shard, count(*)::int as n from flow_jobs group by shard order by shard`;
      expect(shards.map((s) => s.shard)).toEqual([0, 1, 2]);
      for (const port of await redis.masters()) expect(await redis.keysOn(port)).toBeGreaterThan(0);

      // The three shard leases spread over both processes (the first to start hands one on).
      const leader = async (base: string) => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return [...text.matchAll(/^flowd_recorder_leader\{shard="\d+"\} 1$/gm)].length;
      };
      await waitFor(async () => (await leader(w1.base)) >= 1 && (await leader(w2.base)) >= 1, 40_000, "both worker processes holding a recorder lease");
      expect((await leader(w1.base)) + (await leader(w2.base))).toBe(3);
    } finally {
      await c.stop();
    }
  }, 120_000);

  test("a master killed with kill -9 mid-run: its replica takes over, /readyz says so while it lasts, every accepted flow completes and no job runs twice", async () => {
    const c = await startCluster({ apis: 1, workers: 2, tag: "rcfail", env: clusterEnv(3) });
    try {
      const api = c.apis[0]!;
      let accepted = 0;
      let stop = false;
      const creating = (async () => {
        for (let i = 0; !stop; i++) {
          const res = await api.http("POST", "/v1/flows", flow(`b${i}`)).catch(() => null);
          if (res?.status === 201) accepted++;
          await Bun.sleep(20); // a steady trickle, not a flood: the point is the failover, not throughput
        }
      })();
      await waitFor(() => accepted >= 20, 30_000, "20 flows accepted");
      const [victim] = await redis.masters();
      await redis.kill(victim!);
      // Readiness names Redis while the dead master's slots have no owner.
      await waitFor(async () => (await fetch(`${api.url}/readyz`)).status === 503, 15_000, "/readyz answering 503 during the failover", 50);
      await redis.waitHealthy();
      await waitFor(async () => (await fetch(`${api.url}/readyz`)).status === 200, 30_000, "/readyz ready again after the failover");
      const before = accepted;
      await waitFor(() => accepted >= before + 20, 30_000, "20 more flows accepted after the failover");
      stop = true;
      await creating;
      await waitFor(async () => (await unfinishedFlows(c)) === 0, 90_000, "every accepted flow completed");
      await expectEachJobRanOnce(c);
      console.log(`flows accepted ${accepted}; master ${victim} killed mid-run; every job ran once`);
    } finally {
      await c.stop();
    }
  }, 180_000);

  test("FLOWD_SHARDS lowered from 3 to 2 with flows in flight strands none", async () => {
    const c = await startCluster({ apis: 1, workers: 0, tag: "rcless", env: clusterEnv(3) });
    try {
      // No worker yet: the flows wait in Redis on all three shards.
      for (let i = 0; i < 24; i++) expect((await c.apis[0]!.http("POST", "/v1/flows", flow(`c${i}`))).status).toBe(201);
      const onShard2 = (await c.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where shard = 2`)[0]!.n;
      expect(onShard2).toBeGreaterThan(0);
      // Restarted with two shards: new work goes to shards 0 and 1, and shard 2's flows still run.
      await c.apis[0]!.proc.stop("SIGTERM");
      c.apis.length = 0;
      const api = await c.startApi({ FLOWD_SHARDS: "2" });
      await c.startWorker({ FLOWD_SHARDS: "2" });
      for (let i = 0; i < 6; i++) expect((await api.http("POST", "/v1/flows", flow(`d${i}`))).status).toBe(201);
      await waitFor(async () => (await unfinishedFlows(c)) === 0, 60_000, "every flow completed, shard 2's included");
      await expectEachJobRanOnce(c);
      const newOnShard2 = await c.database.sql<{ n: number }[]>`select count(*)::int as n from flows f join flow_jobs j on j.flow_id = f.id where f.name like 'f-d%' and j.shard = 2`;
      expect(newOnShard2[0]!.n).toBe(0);
    } finally {
      await c.stop();
    }
  }, 120_000);
});
