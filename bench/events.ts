/**
 * Real-time path: a job's completion to its event on a subscribed socket, against BullMQ's own
 * QueueEvents `completed` for the very same jobs on the same Redis; then fan-out to many sockets.
 */
import { Queue, QueueEvents } from "bullmq";
import IORedis from "ioredis";
import postgres from "postgres";
import { startCluster, type Cluster } from "../test/helpers/cluster";
import { checkServices, ensureTemplate, REDIS_URL } from "../test/helpers/services";
import { connectWs, type WsClient } from "../test/helpers/ws-client";
import { frameCountingSocket } from "./raw-ws";
import { clusterProcesses, cpuSeconds, cpuSpent, median, percentile, printConditions, ratio } from "./stats";

const JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 300);

async function latency(cluster: Cluster) {
  const api = cluster.apis[0]!;
  const socket = await connectWs(api.wsUrl, cluster.token);
  stampArrivals(socket);
  socket.send({ op: "subscribe", all: true });
  await socket.next((m) => m.type === "subscribed");
  const connection = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const queueEvents = new QueueEvents("flows", { connection, prefix: cluster.prefix });
  await queueEvents.waitUntilReady();
  const queue = new Queue("flows", { connection: new IORedis(REDIS_URL), prefix: cluster.prefix });

  const viaQueueEvents = new Map<string, number>();
  queueEvents.on("completed", ({ jobId }) => viaQueueEvents.set(jobId, Date.now()));
  const jobIds: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const res = await api.http("POST", "/v1/flows", { name: "latency", root: { name: "echo", data: { i } } });
    jobIds.push(res.body.root.jobId);
    // Spaced out: this measures latency, not a queue building up.
    await Bun.sleep(5);
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !jobIds.every((id) => arrival.has(id) && viaQueueEvents.has(id))) await Bun.sleep(20);
  const socketLat: number[] = [];
  const qeLat: number[] = [];
  for (const id of jobIds) {
    const job = await queue.getJob(id);
    if (!job?.finishedOn) continue;
    const s = arrival.get(id);
    const q = viaQueueEvents.get(id);
    if (s) socketLat.push(s - job.finishedOn);
    if (q) qeLat.push(q - job.finishedOn);
  }
  socket.close();
  await queueEvents.close();
  await queue.close();
  connection.disconnect();
  return { socketLat, qeLat };
}

/** Arrival time of each job's completed event, stamped by the socket's own message handler. */
const arrival = new Map<string, number>();
function stampArrivals(c: WsClient) {
  const push = c.messages.push.bind(c.messages);
  c.messages.push = (...items: any[]) => {
    for (const m of items)
      if (m.type === "event" && m.event === "job.updated" && m.status === "completed" && !arrival.has(m.data?.jobId)) arrival.set(m.data.jobId, Date.now());
    return push(...items);
  };
}

async function fanOut(cluster: Cluster, extraSockets: number) {
  const api = cluster.apis[0]!;
  // The other sockets count frames on raw TCP and parse only completions: dispatching a million
  // messages through a WebSocket client here would measure this process, not the server.
  const others = await Promise.all(Array.from({ length: extraSockets }, () => frameCountingSocket(api.wsUrl, cluster.token)));
  const observer = await connectWs(api.wsUrl, cluster.token);
  observer.send({ op: "subscribe", all: true });
  await observer.next((m) => m.type === "subscribed");
  const sql = postgres(cluster.env.DATABASE_URL!, { max: 1 });
  let notifications = 0;
  await sql.listen("flowd_events", () => notifications++);
  const stat = async () => {
    const [r] = await sql<{ commits: string; seq: string }[]>`
      select (select xact_commit from pg_stat_database where datname = current_database())::text as commits,
             (select coalesce(max(seq), 0) from events)::text as seq`;
    return { commits: Number(r!.commits), seq: Number(r!.seq) };
  };
  const groups = await clusterProcesses(cluster, "clients");
  const cpuBefore = await cpuSeconds(groups);
  const before = await stat();
  const t = performance.now();
  const flows: string[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await api.http("POST", "/v1/flows", { name: "fan", root: { name: "echo", children: Array.from({ length: 49 }, (_, j) => ({ name: "echo", data: { j } })) } });
    flows.push(res.body.id);
  }
  for (const id of flows) await observer.next((m) => m.type === "event" && m.event === "flow.completed" && m.flowId === id, 60_000);
  // Every other socket saw every flow complete too.
  await Promise.all(
    others.map(async (c) => {
      for (const id of flows) await c.sawCompletion(id);
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  const cpu = cpuSpent(cpuBefore, await cpuSeconds(groups));
  await Bun.sleep(600); // pg_stat counters are flushed lazily
  const after = await stat();
  const events = observer.messages.filter((m) => m.type === "event").length;
  // Each socket got every message the observer got (its `subscribed` reply and every event).
  const short = others.filter((c) => c.frames < observer.messages.length).length;
  if (short > 0) throw new Error(`${short} of ${others.length} sockets received fewer frames than the observer`);
  observer.close();
  for (const c of others) c.close();
  await sql.end();
  return { eventsPerSecond: events / seconds, events, notifications, commits: after.commits - before.commits, seqs: after.seq - before.seq, seconds, cpu };
}

export async function benchEvents() {
  await checkServices();
  await ensureTemplate();
  printConditions("events: completion → socket latency, and fan-out", { jobs: JOBS, apis: 1, workers: 1 });
  const cluster = await startCluster({ apis: 1, workers: 1, tag: "bevents" });
  try {
    const { socketLat, qeLat } = await latency(cluster);
    const p = (xs: number[], q: number) => percentile(xs, q).toFixed(1);
    console.log(
      `latency (ms from job finishedOn) socket p50 ${p(socketLat, 50)} p99 ${p(socketLat, 99)} | QueueEvents p50 ${p(qeLat, 50)} p99 ${p(qeLat, 99)} | ` +
        `ratio p50 ${ratio(median(socketLat), Math.max(median(qeLat), 0.5))} (goal: p50 <= 5 ms, p99 <= 25 ms; n=${socketLat.length})`,
    );
    if (process.env.BENCH_SKIP_FANOUT) return;
    const rates: Record<number, number> = {};
    for (const n of [0, 100, 1000]) {
      const r = await fanOut(cluster, n);
      rates[n] = r.eventsPerSecond;
      console.log(
        `fan-out ${String(n).padStart(4)} sockets: ${r.eventsPerSecond.toFixed(0)} events/s per socket (${r.events} events) | ` +
          `NOTIFY per event-writing statement <= 1 (notifications ${r.notifications} for ${r.seqs} events) | commits per event ${(r.commits / r.seqs).toFixed(3)}`,
      );
      console.log(`  cpu over ${r.seconds.toFixed(2)} s: ${r.cpu}`);
    }
    console.log(`fan-out ratio 1000 vs 0 sockets: ${ratio(rates[1000]!, rates[0]!)} (goal >= 0.9)`);
  } finally {
    await cluster.stop();
  }
}

if (import.meta.main) await benchEvents();
