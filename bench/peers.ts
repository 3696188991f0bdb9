/**
 * `bun run bench peers`: flowd against plain BullMQ on the same Redis, BullMQ's Postgres backend,
 * pg-boss and graphile-worker, each on its fast documented settings, on the same work — a batched
 * bulk, 16 clients of single creates, 1,000-job flows, and create → completion latency — as medians
 * of alternating runs with whole-machine CPU per job, in a table of ratios to plain BullMQ.
 */
import { loadavg } from "node:os";
import IORedis from "ioredis";
import postgres from "postgres";
import { checkServices, dbUrl, ensureTemplate, REDIS_URL } from "../test/helpers/services";
import { median, printConditions } from "./stats";
import { parsePeersArgs, PeersArgsError, type SystemKey } from "./peers/args";
import { bullmqPeer, bullmqPgPeer } from "./peers/bullmq";
import { flowdPeer } from "./peers/flowd";
import { graphilePeer } from "./peers/graphile";
import { pgBossPeer } from "./peers/pg-boss";
import type { Peer } from "./peers/session";
import { runWorkloads, type SessionResult, type Throughput } from "./peers/workloads";

const PEERS: Record<SystemKey, Peer> = { flowd: flowdPeer, bullmq: bullmqPeer, "bullmq-pg": bullmqPgPeer, "pg-boss": pgBossPeer, graphile: graphilePeer };

/** What the table cannot show: the systems do not promise the same things. */
const NOT_EQUAL = [
  "history: flowd keeps every job row and every status change as an event row (the log a client resumes from); " +
    "BullMQ (both backends) and pg-boss keep completed jobs, without a log; graphile-worker deletes a job when it finishes",
  "durability: flowd, BullMQ's Postgres backend, pg-boss and graphile-worker commit to Postgres before a create returns; " +
    "plain BullMQ's jobs live in Redis memory only (this Redis runs without AOF or snapshots)",
  "HTTP hop: flowd's clients create over HTTP to an API process and its worker is another process; " +
    "every peer is a library called in the bench's own process (its worker too)",
  "completion seen: flowd's latency ends at the socket's event, BullMQ's at QueueEvents, graphile-worker's at its in-process " +
    "job:complete, pg-boss's at a 2 ms poll of the job's row (it has no completion signal for other clients)",
];

async function serverFacts(): Promise<string> {
  const sql = postgres(dbUrl("postgres"), { max: 1, onnotice: () => {} });
  const redis = new IORedis(REDIS_URL);
  try {
    const [pg] = await sql<{ v: string; sc: string; fsync: string }[]>`
      select current_setting('server_version') as v, current_setting('synchronous_commit') as sc, current_setting('fsync') as fsync`;
    const aof = ((await redis.config("GET", "appendonly")) as string[])[1];
    const save = ((await redis.config("GET", "save")) as string[])[1];
    const info = await redis.info("server");
    const rv = /redis_version:(\S+)/.exec(info)?.[1];
    return `Postgres ${pg!.v} (synchronous_commit=${pg!.sc}, fsync=${pg!.fsync}), Redis ${rv} (appendonly=${aof}, save="${save}"), loopback`;
  } finally {
    redis.disconnect();
    await sql.end({ timeout: 1 });
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const load = () => loadavg().map((l) => l.toFixed(1)).join(" ");

type Key = "bulk" | "singles" | "flows";
const line = (t: Throughput) => `${fmt(t.rate)}/s, CPU ms/job own ${fmt(t.ownCpuMs, 3)} machine ${fmt(t.cpuMs, 3)}`;

export async function benchPeers(argv = process.argv.slice(3)) {
  let args;
  try {
    args = parsePeersArgs(argv);
  } catch (err) {
    if (err instanceof PeersArgsError) {
      console.error(`bench peers: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const { sizes, systems } = args;
  await checkServices();
  await ensureTemplate();
  printConditions(`peers: flowd against plain BullMQ, BullMQ's Postgres backend, pg-boss and graphile-worker${args.quick ? " (--quick: smaller sizes, a smoke check)" : ""}`, {
    reps: `${sizes.reps} (median; the order of systems rotates each rep)`,
    bulk: `${sizes.bulkJobs} jobs in batches of ${sizes.bulkBatch}, until all completed`,
    singles: `${sizes.clients} clients for ${sizes.singlesSeconds} s, creates/s; CPU until all completed`,
    flows: `${sizes.flows} x ${sizes.flowSize}-job trees one after another`,
    latency: `${sizes.latencyJobs} sequential jobs, create -> completion seen by a client`,
    concurrency: sizes.concurrency,
    warmup: `${sizes.warmup} singles + 100 batched + a 10-job flow per session`,
  });
  console.log(`servers: ${await serverFacts()}; load average at start ${load()}`);
  for (const key of systems) console.log(`settings ${PEERS[key].label}: ${PEERS[key].settings}`);

  const results = Object.fromEntries(systems.map((k) => [k, [] as SessionResult[]])) as Record<SystemKey, SessionResult[]>;
  const started = performance.now();
  for (let rep = 0; rep < sizes.reps; rep++) {
    const order = systems.map((_, i) => systems[(i + rep) % systems.length]!);
    for (const key of order) {
      const peer = PEERS[key];
      const session = await peer.start(sizes);
      let r: SessionResult;
      try {
        r = await runWorkloads(session, sizes);
      } finally {
        await session.stop();
      }
      results[key].push(r);
      console.log(
        `rep ${rep + 1} ${peer.label.padEnd(18)} bulk ${line(r.bulk)} | singles ${line(r.singles)} | flows ${r.flows ? line(r.flows) : "-"} | ` +
          `latency p50 ${fmt(r.latency.p50, 1)} p99 ${fmt(r.latency.p99, 1)} ms | load ${load()}`,
      );
    }
  }
  printTable(systems, results);
  console.log(`\nnot equal:\n${NOT_EQUAL.map((l) => `- ${l}`).join("\n")}`);
  console.log(`\nwhole run ${fmt((performance.now() - started) / 1000)} s; load average at end ${load()}`);
}

function printTable(systems: SystemKey[], results: Record<SystemKey, SessionResult[]>) {
  const med = (k: SystemKey, f: (r: SessionResult) => number | undefined) => {
    const xs = results[k].map(f).filter((v): v is number => v !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const spread = (k: SystemKey, f: (r: SessionResult) => number | undefined) => {
    const xs = results[k].map(f).filter((v): v is number => v !== undefined);
    return xs.length > 1 ? ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : "";
  };
  const base = "bullmq" as const;
  const rateCell = (k: SystemKey, w: Key) => {
    const v = med(k, (r) => r[w]?.rate);
    const b = med(base, (r) => r[w]?.rate);
    return v === undefined ? "n/a" : `${fmt(v)}/s${spread(k, (r) => r[w]?.rate)}${b && k !== base ? ` ${x(v, b)}` : ""}`;
  };
  const cpuCell = (k: SystemKey, w: Key) => {
    const own = med(k, (r) => r[w]?.ownCpuMs);
    const machine = med(k, (r) => r[w]?.cpuMs);
    const bOwn = med(base, (r) => r[w]?.ownCpuMs);
    const bMachine = med(base, (r) => r[w]?.cpuMs);
    if (own === undefined || machine === undefined) return "n/a";
    return `${fmt(own, 2)} / ${fmt(machine, 2)}${bOwn && bMachine && k !== base ? ` (${x(own, bOwn)} / ${x(machine, bMachine)})` : ""}`;
  };
  const latCell = (k: SystemKey) => {
    const p50 = med(k, (r) => r.latency.p50)!;
    const p99 = med(k, (r) => r.latency.p99)!;
    const b = med(base, (r) => r.latency.p50)!;
    return `${fmt(p50, 1)} / ${fmt(p99, 1)}${k !== base ? ` ${x(p50, b)}` : ""}`;
  };
  console.log(
    "\nmedians (min–max over reps); ratios to plain BullMQ; CPU = ms per job, own processes / whole machine " +
      "(own: the bench process, the system's server processes, the Postgres backends on its database, the shared Redis server if it uses Redis)",
  );
  console.log("| system | bulk jobs/s | CPU own / machine | 16 clients creates/s | CPU own / machine | 1,000-job flows jobs/s | CPU own / machine | latency p50 / p99 ms |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const k of systems)
    console.log(
      `| ${PEERS[k].label} | ${rateCell(k, "bulk")} | ${cpuCell(k, "bulk")} | ${rateCell(k, "singles")} | ${cpuCell(k, "singles")} | ` +
        `${rateCell(k, "flows")} | ${cpuCell(k, "flows")} | ${latCell(k)} |`,
    );
}

if (import.meta.main) {
  await benchPeers(process.argv.slice(2));
  process.exit(0);
}
