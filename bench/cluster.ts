/**
 * flowd on a real Redis Cluster (six redis-servers on loopback, three masters with a replica each):
 * end-to-end jobs/s and the status recorder's write lag with FLOWD_SHARDS=1 (one hash tag: every
 * key on one master, one recorder) against FLOWD_SHARDS=3 (every master, a recorder per shard),
 * one API and two worker processes each, printed side by side.
 */
import { startCluster, type Cluster } from "../test/helpers/cluster";
import { startRedisCluster, type RedisCluster } from "../test/helpers/redis-cluster";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { cpuSeconds, median, printConditions, ratio } from "./stats";

const BULK = 1000;
const BULKS = Number(process.env.BENCH_BULKS ?? 6);
const CONCURRENCY = 16;
/** Bulk creates in flight at once: enough that the API is never what waits. */
const CLIENTS = 2;

const machineCpu = async () => (await cpuSeconds({})).machine!;

/** The recorders' lag gauges of a worker's health port (one per shard it records). */
async function recorderLags(base: string): Promise<number[]> {
  const text = await (await fetch(`${base}/metrics`)).text().catch(() => "");
  const leading = new Set([...text.matchAll(/^flowd_recorder_leader(\{shard="(@?\d+)"\})? 1$/gm)].map((m) => m[2] ?? "default"));
  return [...text.matchAll(/^flowd_recorder_lag_seconds(\{shard="(@?\d+)"\})? ([\d.e+-]+)$/gm)]
    .filter((m) => leading.has(m[2] ?? "default"))
    .map((m) => Number(m[3]) * 1000);
}

async function run(redis: RedisCluster, shards: number) {
  const env: Record<string, string> = { REDIS_CLUSTER_NODES: redis.nodesEnv, FLOWD_SHARDS: String(shards), WORKER_CONCURRENCY: String(CONCURRENCY) };
  // One shard on a cluster needs a hash tag of its own; more shards make theirs.
  if (shards === 1) env.FLOWD_PREFIX = `{bcl${Date.now().toString(36)}}`;
  const c: Cluster = await startCluster({ apis: 1, workers: 0, tag: "bcl", env });
  try {
    const workers = [await c.startWorkerWithHealthPort(), await c.startWorkerWithHealthPort()];
    // Both processes hold a lease before timing starts (with 3 shards the first hands one on).
    if (shards > 1) for (let i = 0; i < 100 && (await Promise.all(workers.map((w) => recorderLags(w.base)))).some((l) => l.length === 0); i++) await Bun.sleep(250);
    const completed = async () => (await c.database.sql<{ n: number }[]>`select count(*)::int as n from jobs where status = 'completed'`)[0]!.n;
    const lags: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const w of workers) lags.push(...(await recorderLags(w.base)));
        await Bun.sleep(250);
      }
    })();
    const cpu0 = await machineCpu();
    const t = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < BULKS) {
          const round = next++;
          const res = await c.apis[0]!.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: BULK }, (_, i) => ({ name: "echo", data: { round, i } })) });
          if (res.status !== 201) throw new Error(`POST /v1/jobs/bulk answered ${res.status}`);
        }
      }),
    );
    while ((await completed()) < BULKS * BULK) await Bun.sleep(20);
    const seconds = (performance.now() - t) / 1000;
    const cpu = (await machineCpu()) - cpu0;
    sampling = false;
    await sampler;
    const byShard = await c.database.sql<{ shard: number | null; n: number }[]>`select shard, count(*)::int as n from jobs group by shard order by shard`;
    return { rate: (BULKS * BULK) / seconds, seconds, cpu, lagMedian: median(lags), lagMax: Math.max(0, ...lags), byShard: byShard.map((r) => `${r.shard ?? "-"}:${r.n}`).join(" ") };
  } finally {
    await c.stop();
  }
}

export async function benchCluster() {
  await checkServices();
  await ensureTemplate();
  const redis = await startRedisCluster();
  try {
    printConditions("Redis Cluster: FLOWD_SHARDS=1 vs 3 (3 masters + 3 replicas on loopback, 1 API + 2 worker processes)", {
      jobs: `${BULKS} x POST /v1/jobs/bulk of ${BULK} echo jobs, ${CLIENTS} in flight`,
      concurrency: `${CONCURRENCY} per queue per shard per worker process`,
      done: "when Postgres shows every job completed",
      lag: "flowd_recorder_lag_seconds of every leading recorder, sampled every 250 ms",
    });
    const one = await run(redis, 1);
    const three = await run(redis, 3);
    const row = (label: string, a: string, b: string, r = "") => console.log(`${label.padEnd(22)}${a.padEnd(18)}${b.padEnd(18)}${r}`);
    row("", "FLOWD_SHARDS=1", "FLOWD_SHARDS=3", "ratio 3/1");
    row("jobs/s end to end", one.rate.toFixed(0), three.rate.toFixed(0), ratio(three.rate, one.rate));
    row("recorder lag median", `${one.lagMedian.toFixed(0)} ms`, `${three.lagMedian.toFixed(0)} ms`);
    row("recorder lag max", `${one.lagMax.toFixed(0)} ms`, `${three.lagMax.toFixed(0)} ms`);
    row("machine CPU", `${one.cpu.toFixed(1)} s`, `${three.cpu.toFixed(1)} s`, ratio(three.cpu, one.cpu));
    row("jobs per shard", one.byShard, three.byShard);
  } finally {
    await redis.stop();
  }
}

if (import.meta.main) await benchCluster();
