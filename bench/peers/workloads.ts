/** The four workloads of `bench peers`, run the same way against any Session, with whole-machine CPU. */
import { cpuSeconds, percentile } from "../stats";
import type { Sizes } from "./args";
import { until, type Session } from "./session";

export interface Throughput {
  /** Jobs per second (for singles: creates per second while the clients ran). */
  rate: number;
  /** Whole-machine CPU milliseconds per job, from /proc/stat, until every job was completed. */
  cpuMs: number;
  /** The same counting only the system's own processes (Session.processes and this one): other work on the machine left out. */
  ownCpuMs: number;
}

export interface SessionResult {
  bulk: Throughput;
  singles: Throughput;
  flows?: Throughput;
  latency: { p50: number; p99: number };
}

/** Machine CPU seconds, and each process's: one group per pid, so a backend that appears mid-phase counts from zero. */
async function cpuNow(pids: number[]) {
  const all = await cpuSeconds(Object.fromEntries(pids.map((p) => [String(p), [p]])));
  return { machine: all.machine!, byPid: all };
}

async function waitCompleted(s: Session, target: number, what: string) {
  await until(async () => (await s.completed()) >= target, what, s.pollMs);
}

/**
 * Measures `run` (which handles `jobs` jobs and waits for them) in wall time, machine CPU, and the
 * CPU of the system's own processes (those alive at the start or the end of the phase).
 */
async function measured(s: Session, jobs: () => number, run: () => Promise<number | void>): Promise<Throughput> {
  const before = await s.processes();
  const cpu0 = await cpuNow([process.pid, ...before]);
  const t = performance.now();
  const seconds = await run();
  const elapsed = (performance.now() - t) / 1000;
  const pids = [...new Set([process.pid, ...before, ...(await s.processes())])];
  const cpu1 = await cpuNow(pids);
  // A process gone by the end reads 0: its share is lost rather than counted negative.
  const own = pids.reduce((sum, p) => sum + Math.max(0, (cpu1.byPid[String(p)] ?? 0) - (cpu0.byPid[String(p)] ?? 0)), 0);
  return { rate: jobs() / (seconds || elapsed), cpuMs: ((cpu1.machine - cpu0.machine) / jobs()) * 1000, ownCpuMs: (own / jobs()) * 1000 };
}

/** `clients` loops calling `createOne` until `seconds` pass; returns how many were created and how long creating took. */
async function singles(s: Session, clients: number, seconds: number) {
  let next = 0;
  const t = performance.now();
  const deadline = t + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < deadline) await s.createOne(next++);
  }));
  return { created: next, seconds: (performance.now() - t) / 1000 };
}

export async function runWorkloads(s: Session, sizes: Sizes): Promise<SessionResult> {
  // Warm-up: a fresh process runs cold code, on every side.
  const w0 = await s.completed();
  let n = 0;
  await Promise.all(Array.from({ length: sizes.clients }, async () => {
    while (n < sizes.warmup) await s.createOne(-1 - n++);
  }));
  await s.createBatch(100, -1);
  await waitCompleted(s, w0 + sizes.warmup + 100, "the warm-up jobs");
  if (s.flow) await s.flow(10);

  const b0 = await s.completed();
  const bulk = await measured(s, () => sizes.bulkJobs, async () => {
    for (let round = 0; round * sizes.bulkBatch < sizes.bulkJobs; round++)
      await s.createBatch(Math.min(sizes.bulkBatch, sizes.bulkJobs - round * sizes.bulkBatch), round);
    await waitCompleted(s, b0 + sizes.bulkJobs, `${sizes.bulkJobs} bulk jobs`);
  });

  const s0 = await s.completed();
  let created = 0;
  const single = await measured(s, () => created, async () => {
    const run = await singles(s, sizes.clients, sizes.singlesSeconds);
    created = run.created;
    await waitCompleted(s, s0 + created, `${created} single jobs`);
    return run.seconds;
  });

  const flows = s.flow
    ? await measured(s, () => sizes.flows * sizes.flowSize, async () => {
        for (let f = 0; f < sizes.flows; f++) await s.flow!(sizes.flowSize);
      })
    : undefined;

  for (let i = 0; i < 5; i++) await s.roundTrip(-1 - i);
  const lat: number[] = [];
  for (let i = 0; i < sizes.latencyJobs; i++) lat.push(await s.roundTrip(i));
  return { bulk, singles: single, flows, latency: { p50: percentile(lat, 50), p99: percentile(lat, 99) } };
}
