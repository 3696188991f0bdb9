/** The four workloads of `bench peers`, run the same way against any Session, with whole-machine CPU. */
import { cpuSeconds, percentile } from "../stats";
import type { Sizes } from "./args";
import { until, type Session } from "./session";

export interface Throughput {
  /** Jobs per second (for singles: creates per second while the clients ran). */
  rate: number;
  /** Whole-machine CPU milliseconds per job, from /proc/stat, until every job was completed. */
  cpuMs: number;
}

export interface SessionResult {
  bulk: Throughput;
  singles: Throughput;
  flows?: Throughput;
  latency: { p50: number; p99: number };
}

const machineCpu = async () => (await cpuSeconds({})).machine!;

async function waitCompleted(s: Session, target: number, what: string) {
  await until(async () => (await s.completed()) >= target, what, s.pollMs);
}

/** Measures `run` (which handles `jobs` jobs and waits for them) in wall time and machine CPU. */
async function measured(jobs: () => number, run: () => Promise<number | void>): Promise<Throughput> {
  const cpu0 = await machineCpu();
  const t = performance.now();
  const seconds = await run();
  const elapsed = (performance.now() - t) / 1000;
  const cpu = (await machineCpu()) - cpu0;
  return { rate: jobs() / (seconds || elapsed), cpuMs: (cpu / jobs()) * 1000 };
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
  const bulk = await measured(() => sizes.bulkJobs, async () => {
    for (let round = 0; round * sizes.bulkBatch < sizes.bulkJobs; round++)
      await s.createBatch(Math.min(sizes.bulkBatch, sizes.bulkJobs - round * sizes.bulkBatch), round);
    await waitCompleted(s, b0 + sizes.bulkJobs, `${sizes.bulkJobs} bulk jobs`);
  });

  const s0 = await s.completed();
  let created = 0;
  const single = await measured(() => created, async () => {
    const run = await singles(s, sizes.clients, sizes.singlesSeconds);
    created = run.created;
    await waitCompleted(s, s0 + created, `${created} single jobs`);
    return run.seconds;
  });

  const flows = s.flow
    ? await measured(() => sizes.flows * sizes.flowSize, async () => {
        for (let f = 0; f < sizes.flows; f++) await s.flow!(sizes.flowSize);
      })
    : undefined;

  for (let i = 0; i < 5; i++) await s.roundTrip(-1 - i);
  const lat: number[] = [];
  for (let i = 0; i < sizes.latencyJobs; i++) lat.push(await s.roundTrip(i));
  return { bulk, singles: single, flows, latency: { p50: percentile(lat, 50), p99: percentile(lat, 99) } };
}
