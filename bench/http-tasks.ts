/**
 * HTTP tasks: 1,000 tasks whose service parks them (202) against 1,000 it answers 200, on one
 * worker process with concurrency 16 — how long until every call has reached the service, and the
 * worker's memory while a thousand jobs wait for their callbacks — then the delay from a callback's
 * `complete` to `job.updated completed` on a socket.
 */
import { startCluster } from "../test/helpers/cluster";
import { connectWs } from "../test/helpers/ws-client";
import { checkServices, ensureTemplate } from "../test/helpers/services";
import { startTaskReceiver } from "../test/helpers/task-receiver";
import { cpuSeconds, percentile, printConditions, ratio } from "./stats";

const TASKS = Number(process.env.BENCH_HTTP_TASKS ?? 1000);
const CONCURRENCY = 16;
const CALLBACKS = 200;

const rssMiB = async (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(await Bun.file(`/proc/${pid}/status`).text())?.[1] ?? 0) / 1024;

export async function benchHttpTasks() {
  await checkServices();
  await ensureTemplate();
  printConditions("http tasks: 202-parked against 200-answered, then callback → socket", { tasks: TASKS, concurrency: CONCURRENCY, workerProcesses: 1 });
  const receiver = startTaskReceiver((path) => (path === "/park" ? { status: 202 } : { status: 200, body: { ok: true } }));
  const cluster = await startCluster({ apis: 0, workers: 0, tag: "btask" });
  const api = await cluster.startApi();
  const worker = await cluster.startWorker({ WORKER_CONCURRENCY: String(CONCURRENCY), FLOWD_PUBLIC_URL: api.url });
  const pid = worker.proc.pid;
  try {
    // Warm both paths (first signing secret, prepared statements) outside the timings.
    await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: 20 }, () => ({ name: "http", data: { url: receiver.url("/warm") } })) });
    while (receiver.callsTo("/warm").length < 20) await Bun.sleep(20);
    await Bun.sleep(500);
    const idleRss = await rssMiB(pid);

    const phase = async (path: string) => {
      const cpu = await cpuSeconds({});
      const started = performance.now();
      const res = await api.http("POST", "/v1/jobs/bulk", { jobs: Array.from({ length: TASKS }, (_, i) => ({ name: "http", data: { url: receiver.url(path), method: "POST", body: { i } } })) });
      if (res.status !== 201) throw new Error(`bulk create answered ${res.status}: ${JSON.stringify(res.body)}`);
      let peakRss = 0;
      while (receiver.callsTo(path).length < TASKS) {
        peakRss = Math.max(peakRss, await rssMiB(pid));
        await Bun.sleep(20);
      }
      const ms = performance.now() - started;
      const cpuAfter = await cpuSeconds({});
      return { ms, machineCpu: cpuAfter.machine! - cpu.machine!, peakRss: Math.max(peakRss, await rssMiB(pid)), ids: res.body.items.map((j: { id: string }) => j.id) as string[] };
    };
    const plain = await phase("/plain");
    // Let the plain tasks' completions settle before the parked run starts.
    while (Number((await cluster.database.sql`select count(*)::int as n from jobs where status = 'completed'`)[0]!.n) < TASKS + 20) await Bun.sleep(50);
    const parked = await phase("/park");
    const parkedNow = Number((await cluster.database.sql`select count(*)::int as n from jobs where status = 'active' and parked_until is not null`)[0]!.n);

    // Callback → socket: one at a time, as a service reporting back would.
    const ws = await connectWs(api.url.replace(/^http/, "ws") + "/v1/ws", cluster.token);
    ws.send({ op: "subscribe", all: true });
    await ws.next((m) => m.type === "subscribed");
    const delays: number[] = [];
    const calls = receiver.callsTo("/park").slice(0, CALLBACKS);
    for (const call of calls) {
      const jobId = call.headers["flowd-job-id"]!;
      const sent = performance.now();
      const res = await fetch(`${call.headers["flowd-callback-url"]}/complete`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ result: { ok: 1 } }) });
      if (res.status !== 200) throw new Error(`callback answered ${res.status}`);
      await ws.next((m) => m.type === "event" && m.event === "job.updated" && m.status === "completed" && (m.jobId === jobId || m.data?.id === jobId), 10_000);
      delays.push(performance.now() - sent);
    }
    ws.close();

    console.log(`every call at the service  parked (202) ${parked.ms.toFixed(0)} ms | answered (200) ${plain.ms.toFixed(0)} ms | ratio ${ratio(parked.ms, plain.ms)} (goal ≤ 2.00x)`);
    console.log(`whole-machine CPU           parked ${parked.machineCpu.toFixed(2)} s | answered ${plain.machineCpu.toFixed(2)} s`);
    console.log(`worker RSS                  idle ${idleRss.toFixed(0)} MiB, peak while ${parkedNow} jobs were parked ${parked.peakRss.toFixed(0)} MiB (+${(parked.peakRss - idleRss).toFixed(0)} MiB; goal ≤ +50), peak answering ${plain.peakRss.toFixed(0)} MiB`);
    console.log(`callback complete → job.updated completed on a socket (${delays.length})  p50 ${percentile(delays, 50).toFixed(1)} ms  p90 ${percentile(delays, 90).toFixed(1)} ms  p99 ${percentile(delays, 99).toFixed(1)} ms (goal p50 ≤ 20)`);
  } finally {
    await cluster.stop();
    receiver.stop();
  }
}

if (import.meta.main) await benchHttpTasks();
