import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startRedisCluster, type RedisCluster } from "../helpers/redis-cluster";
import { startCountingReceiver } from "../helpers/receiver";
import { waitFor } from "../helpers/wait";
import { configuredShards, keySlot, shardPrefix } from "../../src/shards";

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
    // Whatever the prefix (this one is random): the shards' tags are aimed at the three masters' ranges.
    const c = await startCluster({ apis: 1, workers: 0, tag: "rc", env: clusterEnv(3) });
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
      expect(shards.map((s) => s.shard)).toEqual(configuredShards(3) as number[]);
      for (const port of await redis.masters()) expect(await redis.keysOn(port)).toBeGreaterThan(0);

      // The three shard leases spread over both processes (the first to start hands one on).
      const leader = async (base: string) => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return [...text.matchAll(/^flowd_recorder_leader\{shard="@\d+"\} 1$/gm)].length;
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
      const [third] = configuredShards(3).slice(2) as number[];
      const onThird = (await c.database.sql<{ n: number }[]>`select count(*)::int as n from flow_jobs where shard = ${third!}`)[0]!.n;
      expect(onThird).toBeGreaterThan(0);
      // Restarted with two shards: new work goes to the two shards aimed for FLOWD_SHARDS=2, and the three old ones' flows still run.
      await c.apis[0]!.proc.stop("SIGTERM");
      c.apis.length = 0;
      const api = await c.startApi({ FLOWD_SHARDS: "2" });
      await c.startWorker({ FLOWD_SHARDS: "2" });
      // Shards are picked from the flow id: 24 flows reach both shards but for a 2^-23 chance (6 missed one 1 time in 32).
      for (let i = 0; i < 24; i++) expect((await api.http("POST", "/v1/flows", flow(`d${i}`))).status).toBe(201);
      await waitFor(async () => (await unfinishedFlows(c)) === 0, 60_000, "every flow completed, the third shard's included");
      await expectEachJobRanOnce(c);
      const fresh = await c.database.sql<{ shard: number }[]>`select distinct j.shard from flows f join flow_jobs j on j.flow_id = f.id where f.name like 'f-d%' order by 1`;
      expect(fresh.map((r) => r.shard)).toEqual(configuredShards(2) as number[]);
    } finally {
      await c.stop();
    }
  }, 120_000);

  test("for any prefix, 30 flows put keys on every master, each tag in the slot flowd aimed it at, and /readyz shows no master without a shard", async () => {
    const masters = await redis.masters();
    expect(masters).toHaveLength(3);
    const random = `r${Math.random().toString(36).slice(2, 9)}`;
    for (const prefix of [random, "{flowd}", "prod.eu-1_x"]) {
      const c = await startCluster({ apis: 1, workers: 0, tag: "rcp", env: { ...clusterEnv(3), FLOWD_PREFIX: prefix } });
      try {
        // No worker: the flows wait in Redis, under their shards' tags.
        for (let i = 0; i < 30; i++) expect((await c.apis[0]!.http("POST", "/v1/flows", flow(`p${i}`))).status).toBe(201);
        const bare = prefix.replace(/[{}]/g, "");
        const perMaster = await Promise.all(masters.map((port) => redis.keysMatching(port, `{${bare}@*`)));
        console.log(`prefix ${prefix}: keys per master ${perMaster.join(" / ")}`);
        for (const n of perMaster) expect(n).toBeGreaterThan(0);
        for (const shard of configuredShards(3)) expect(await redis.keySlot(shardPrefix(prefix, shard))).toBe(keySlot(shardPrefix(prefix, shard)));
        // (It may be `degraded` for another reason: with no worker, no recorder yet.)
        const ready = (await (await fetch(`${c.apis[0]!.url}/readyz`)).json()) as { degraded?: string[]; shards: unknown };
        expect((ready.degraded ?? []).filter((d) => d.includes("masters"))).toEqual([]);
        expect(ready.shards).toEqual({ masters: 3, shards: 3, mastersWithoutShard: [] });
      } finally {
        await c.stop();
      }
    }
  }, 120_000);

  test("FLOWD_SHARDS=2 on three masters: the start log and /readyz name the master that holds no shard, and the API still serves", async () => {
    const c = await startCluster({ apis: 0, workers: 0, tag: "rc2", env: clusterEnv(2) });
    try {
      const api = await c.startApi();
      const warning = JSON.parse(await api.proc.waitForLine(/own none of the 2 shards' slots/)) as { mastersWithoutShard: string[] };
      expect(warning.mastersWithoutShard).toHaveLength(1);
      // The prefixes your own BullMQ workers would consume, logged at start.
      const info = JSON.parse(await api.proc.waitForLine(/BullMQ keys spread over shards/)) as { shardPrefixes: string[] };
      expect(info.shardPrefixes).toEqual(configuredShards(2).map((s) => shardPrefix(c.prefix, s)));
      const res = await fetch(`${api.url}/readyz`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { status: string; shards: unknown; degraded: string[] };
      expect(body.status).toBe("degraded");
      expect(body.shards).toEqual({ masters: 3, shards: 2, mastersWithoutShard: warning.mastersWithoutShard });
      expect(body.degraded.join(" ")).toContain(warning.mastersWithoutShard[0]!);
      // The master left out is the one whose range holds neither aimed slot (4096, 12288): the middle one.
      const idle = Number(warning.mastersWithoutShard[0]!.split(":")[1]);
      const owners = await Promise.all(configuredShards(2).map((s) => redis.ownerOf(shardPrefix(c.prefix, s))));
      expect(owners).not.toContain(idle);
      expect((await api.http("POST", "/v1/flows", flow("two"))).status).toBe(201);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
