/**
 * Wait steps: 10,000 `signal` steps parked at once on one worker process (concurrency 16) — the
 * worker's RSS and the Redis bytes under the prefix, against the same worker idle — then the delay
 * from `POST /v1/jobs/:id/signal` to its dependent starting (its `job.updated` active or completed
 * on a socket), one at a time.
 *
 * RSS is read three ways. Right after parking it still holds what the burst of parking (hundreds
 * of jobs a second) allocated and freed: Bun returns that memory to the system some seconds later,
 * so that reading says more about the burst than about the parked steps. Settled is once RSS has
 * stopped falling. Then as many steps again are parked: the second batch's settled difference is
 * what each further parked step costs, since a parked step holds nothing in the worker's memory
 * (BullMQ keeps it in Redis as delayed; its wait is a Postgres row).
 */
import IORedis from "ioredis";
import { startCluster } from "../test/helpers/cluster";
import { REDIS_URL, checkServices, ensureTemplate } from "../test/helpers/services";
import { connectWs } from "../test/helpers/ws-client";
import { percentile, printConditions, ratio } from "./stats";

const STEPS = Number(process.env.BENCH_WAIT_STEPS ?? 10_000);
const SIGNALS = Number(process.env.BENCH_WAIT_SIGNALS ?? 200);
const CONCURRENCY = 16;

const rssMiB = async (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(await Bun.file(`/proc/${pid}/status`).text())?.[1] ?? 0) / 1024;

/**
 * RSS once it has stopped falling: no new low by more than 1 MiB for 15 s in a row, read each
 * second (at most 60 s). After a burst RSS can stay flat for several seconds and then drop at once
 * (seen 7-9 s after parking ended), so a shorter quiet spell is no proof.
 */
async function settledRssMiB(pid: number): Promise<{ rss: number; afterS: number }> {
  const started = performance.now();
  let low = await rssMiB(pid);
  let lowAt = started;
  while (performance.now() - lowAt < 15_000 && performance.now() - started < 60_000) {
    await Bun.sleep(1_000);
    const now = await rssMiB(pid);
    if (now < low - 1) lowAt = performance.now();
    low = Math.min(low, now);
  }
  return { rss: low, afterS: (performance.now() - started) / 1000 };
}

/** Bytes Redis holds for the keys under `prefix` (MEMORY USAGE of each). */
async function redisMiB(prefix: string): Promise<number> {
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    let bytes = 0;
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      const pipe = redis.pipeline();
      for (const k of keys) pipe.memory("USAGE", k);
      for (const [, n] of (await pipe.exec()) ?? []) bytes += Number(n ?? 0);
    } while (cursor !== "0");
    return bytes / 1024 / 1024;
  } finally {
    redis.disconnect();
  }
}

export async function benchWaits() {
  await checkServices();
  await ensureTemplate();
  printConditions("wait steps: parked signal steps, then signal → dependent started", { steps: `${STEPS} then ${2 * STEPS}`, signals: SIGNALS, concurrency: CONCURRENCY, workerProcesses: 1 });
  const cluster = await startCluster({ apis: 0, workers: 0, tag: "bwait" });
  const api = await cluster.startApi();
  const worker = await cluster.startWorker({ WORKER_CONCURRENCY: String(CONCURRENCY) });
  const pid = worker.proc.pid;
  const parkedCount = async () => Number((await cluster.database.sql`select count(*)::int as n from jobs where status = 'active' and waiting_for = 'signal'`)[0]!.n);
  try {
    // Warm the paths (prepared statements) outside the figures.
    await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: 20 }, () => ({ name: "wait", data: { for: 10 } })) });
    await Bun.sleep(1_000);
    const idle = await settledRssMiB(pid);
    const idleRss = idle.rss;
    const idleRedis = await redisMiB(cluster.prefix);

    let peakRss = idleRss;
    /** Parks `count` more signal steps (`total` then wait); ms it took. */
    const park = async (count: number, total: number) => {
      const started = performance.now();
      for (let i = 0; i < count; i += 1000) {
        const res = await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: Math.min(1000, count - i) }, () => ({ name: "signal", data: {} })) });
        if (res.status !== 201) throw new Error(`bulk create answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
      }
      while ((await parkedCount()) < total) {
        peakRss = Math.max(peakRss, await rssMiB(pid));
        await Bun.sleep(200);
      }
      return performance.now() - started;
    };
    const parkMs = await park(STEPS, STEPS);
    await Bun.sleep(1_000);
    const parkedRss = await rssMiB(pid);
    peakRss = Math.max(peakRss, parkedRss);
    const settled = await settledRssMiB(pid);
    const parkedRedis = await redisMiB(cluster.prefix);
    // As many again: what each further parked step costs once settled.
    await park(STEPS, 2 * STEPS);
    const settledTwice = await settledRssMiB(pid);

    // Signal → dependent started, one at a time.
    const flows: { id: string; signalId: string }[] = [];
    for (let i = 0; i < SIGNALS; i++) {
      const res = await api.http("POST", "/v1/flows", { name: "s", jobs: [{ key: "s", name: "signal" }, { key: "d", name: "echo", dependsOn: ["s"] }] });
      flows.push({ id: res.body.id, signalId: res.body.jobs.find((j: { key: string }) => j.key === "s").id });
    }
    while (Number((await cluster.database.sql`select count(*)::int as n from flow_jobs where status = 'active' and waiting_for = 'signal'`)[0]!.n) < SIGNALS) await Bun.sleep(100);
    const ws = await connectWs(api.url.replace(/^http/, "ws") + "/v1/ws", cluster.token);
    ws.send({ op: "subscribe", all: true });
    await ws.next((m) => m.type === "subscribed");
    const delays: number[] = [];
    const sentAt = new Map<string, number>();
    for (const f of flows) {
      const sent = performance.now();
      sentAt.set(f.id, Date.now());
      const res = await api.http("POST", `/v1/jobs/${f.signalId}/signal`, { payload: { i: 1 } });
      if (res.status !== 200) throw new Error(`signal answered ${res.status}`);
      await ws.next((m) => m.type === "event" && m.flowId === f.id && m.data?.key === "d" && (m.status === "active" || m.status === "completed"), 10_000);
      delays.push(performance.now() - sent);
    }
    ws.close();
    // When each dependent actually started (BullMQ's `active`, Redis's clock on this machine), not when its event arrived.
    const starts = await cluster.database.sql<{ flow_id: string; started_at: Date }[]>`
      select flow_id, started_at from flow_jobs where key = 'd' and flow_id in ${cluster.database.sql(flows.map((f) => f.id))}`;
    const startDelays = starts.map((r) => new Date(r.started_at).getTime() - sentAt.get(r.flow_id)!);

    console.log(`${STEPS} signal steps parked in ${(parkMs / 1000).toFixed(1)} s (${(STEPS / (parkMs / 1000)).toFixed(0)}/s)`);
    console.log(
      `worker RSS       idle ${idleRss.toFixed(0)} MiB; with ${STEPS} parked, settled ${settled.rss.toFixed(0)} MiB (+${(settled.rss - idleRss).toFixed(0)} MiB; goal ≤ +50) ` +
        `within ${settled.afterS.toFixed(0)} s; 1 s after parking ${parkedRss.toFixed(0)} MiB (+${(parkedRss - idleRss).toFixed(0)} MiB, the burst's freed memory not yet returned), peak ${peakRss.toFixed(0)} MiB (${ratio(peakRss, idleRss)} idle)`,
    );
    console.log(`worker RSS       with ${2 * STEPS} parked, settled ${settledTwice.rss.toFixed(0)} MiB: the second ${STEPS} cost ${(settledTwice.rss - settled.rss).toFixed(0)} MiB`);
    console.log(`Redis (prefix)   idle ${idleRedis.toFixed(1)} MiB, with ${STEPS} parked ${parkedRedis.toFixed(1)} MiB (+${(parkedRedis - idleRedis).toFixed(1)} MiB; goal ≤ 20)`);
    console.log(`signal sent → dependent started_at (${startDelays.length})  p50 ${percentile(startDelays, 50).toFixed(1)} ms  p90 ${percentile(startDelays, 90).toFixed(1)} ms (goal p50 ≤ 20)`);
    console.log(`signal → dependent's job.updated on a socket (${delays.length})  p50 ${percentile(delays, 50).toFixed(1)} ms  p90 ${percentile(delays, 90).toFixed(1)} ms  p99 ${percentile(delays, 99).toFixed(1)} ms (goal p50 ≤ 20)`);
  } finally {
    await cluster.stop();
  }
}

if (import.meta.main) await benchWaits();
