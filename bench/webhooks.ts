/**
 * Webhook deliveries to a local receiver: deliveries/s and the delay from an event to its first
 * attempt, against a plain BullMQ Queue + Worker posting the same bodies (same Redis, same concurrency).
 */
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";
import { startCluster } from "../test/helpers/cluster";
import { deletePrefix, uniquePrefix } from "../test/helpers/redis";
import { checkServices, ensureTemplate, REDIS_URL } from "../test/helpers/services";
import { percentile, printConditions, ratio } from "./stats";

const FLOWS = Number(process.env.BENCH_WEBHOOK_FLOWS ?? 10);
const JOBS_PER_FLOW = 100;
const CONCURRENCY = 16;

function receiver() {
  const arrivals: { at: number; body: string }[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      arrivals.push({ at: Date.now(), body: await req.text() });
      return new Response("ok");
    },
  });
  return { arrivals, url: `http://127.0.0.1:${server.port}/hook`, stop: () => server.stop(true) };
}

/** Single jobs created one at a time after the burst, for latency at rest. */
const QUIET_JOBS = 30;

async function flowd() {
  const r = receiver();
  const cluster = await startCluster({ apis: 1, workers: 1, tag: "bhooks", env: { WORKER_CONCURRENCY: String(CONCURRENCY), ...(process.env.FLOWD_WEBHOOK_SLOTS_PER_USER ? { FLOWD_WEBHOOK_SLOTS_PER_USER: process.env.FLOWD_WEBHOOK_SLOTS_PER_USER } : {}) } });
  const api = cluster.apis[0]!;
  await api.http("POST", "/v1/webhooks", { url: r.url, events: ["*"] });
  for (let i = 0; i < FLOWS; i++)
    await api.http("POST", "/v1/flows", { name: "hooks", root: { name: "echo", children: Array.from({ length: JOBS_PER_FLOW - 1 }, () => ({ name: "echo" })) } });
  const expected = async () =>
    Number((await cluster.database.sql<{ n: string }[]>`select count(*)::text as n from events`)[0]!.n);
  let total = await expected();
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await Bun.sleep(100)) {
    total = await expected();
    const [{ running } = { running: 1 }] = await cluster.database.sql<{ running: number }[]>`select count(*)::int as running from flows where status = 'running'`;
    if (running === 0 && r.arrivals.length >= total) break;
  }
  const delays = r.arrivals.map((a) => a.at - Date.parse(JSON.parse(a.body).at));
  const span = (r.arrivals[r.arrivals.length - 1]!.at - r.arrivals[0]!.at) / 1000;
  const deliveries = r.arrivals.length;
  // Latency at rest: one job at a time, each event's delivery timed from its commit (`at`).
  const quietFrom = r.arrivals.length;
  for (let i = 0; i < QUIET_JOBS; i++) {
    const created = await api.http("POST", "/v1/jobs", { name: "echo", data: { i } });
    await api.http("GET", `/v1/jobs/${created.body.id}?wait=5`);
    const events = await expected();
    for (const deadline = Date.now() + 5_000; r.arrivals.length < events && Date.now() < deadline; ) await Bun.sleep(5);
    await Bun.sleep(50);
  }
  const quiet = r.arrivals.slice(quietFrom).map((a) => a.at - Date.parse(JSON.parse(a.body).at));
  await cluster.stop();
  r.stop();
  return { rate: deliveries / span, delays, quiet, deliveries, events: total };
}

async function plain(count: number) {
  const r = receiver();
  const prefix = uniquePrefix("bhookplain");
  const conn = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue("webhooks", { connection: conn, prefix });
  const worker = new Worker(
    "webhooks",
    async (job) => {
      const res = await fetch(r.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(job.data), redirect: "manual" });
      if (!res.ok) throw new Error(`answered ${res.status}`);
    },
    { connection: new IORedis(REDIS_URL, { maxRetriesPerRequest: null }), prefix, concurrency: CONCURRENCY },
  );
  await queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: "deliver", data: { type: "job.updated", seq: i, at: new Date().toISOString() } })));
  while (r.arrivals.length < count) await Bun.sleep(20);
  const span = (r.arrivals[r.arrivals.length - 1]!.at - r.arrivals[0]!.at) / 1000;
  await worker.close();
  await queue.close();
  conn.disconnect();
  await deletePrefix(prefix);
  r.stop();
  return { rate: count / span };
}

export async function benchWebhooks() {
  await checkServices();
  await ensureTemplate();
  printConditions("webhooks: deliveries to a local receiver", { flows: FLOWS, jobsPerFlow: JOBS_PER_FLOW, concurrency: CONCURRENCY });
  const f = await flowd();
  const b = await plain(f.deliveries);
  console.log(
    `deliveries  flowd ${f.rate.toFixed(0)}/s (${f.deliveries} of ${f.events} events, signed, each attempt recorded) | ` +
      `plain Queue + Worker + fetch ${b.rate.toFixed(0)}/s | ratio ${ratio(f.rate, b.rate)}`,
  );
  console.log(`event → first attempt, during the burst  p50 ${percentile(f.delays, 50).toFixed(0)} ms  p99 ${percentile(f.delays, 99).toFixed(0)} ms`);
  console.log(
    `event → first attempt, one job at a time (${f.quiet.length} events)  p50 ${percentile(f.quiet, 50).toFixed(0)} ms  p99 ${percentile(f.quiet, 99).toFixed(0)} ms ` +
      "(the dispatcher wakes on the event log's NOTIFY)",
  );
}

if (import.meta.main) await benchWebhooks();
