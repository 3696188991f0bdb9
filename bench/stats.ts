import { cpus } from "node:os";
import type { Sql } from "postgres";
import type { Cluster } from "../test/helpers/cluster";

export const median = (xs: number[]) => percentile(xs, 50);

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const ratio = (a: number, b: number) => (a / b).toFixed(2) + "x";

/** Every benchmark starts by saying where it ran: absolute numbers mean little without it. */
export function printConditions(title: string, params: Record<string, unknown>) {
  const cpu = cpus();
  console.log(`\n# ${title}`);
  console.log(
    `conditions: bun ${Bun.version}, ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ` +
      Object.entries(params).map(([k, v]) => `${k}=${v}`).join(", "),
  );
}

/** CPU seconds (user + system) used so far by each named group of processes, and by the whole machine, read from /proc. */
export async function cpuSeconds(groups: Record<string, number[]>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, pids] of Object.entries(groups)) {
    let ticks = 0;
    for (const pid of pids) {
      const stat = await Bun.file(`/proc/${pid}/stat`).text().catch(() => "");
      // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    }
    out[name] = ticks / 100;
  }
  // The whole machine too: Postgres starts processes of its own (autovacuum, new backends) that a
  // list of pids taken beforehand misses.
  const [, user, nice, system, , , irq, softirq, steal] = (await Bun.file("/proc/stat").text()).split("\n")[0]!.split(/\s+/).map(Number);
  out.machine = (user! + nice! + system! + irq! + softirq! + steal!) / 100;
  return out;
}

/** The pids of every process whose command name is `name` (postgres backends, redis-server). */
export async function pidsNamed(name: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await Array.fromAsync(new Bun.Glob("[0-9]*").scan({ cwd: "/proc", onlyFiles: false }))) {
    const comm = await Bun.file(`/proc/${entry}/comm`).text().catch(() => "");
    if (comm.trim() === name) pids.push(Number(entry));
  }
  return pids;
}

/** "name 1.23 s" pairs for the difference between two cpuSeconds readings. */
export const cpuSpent = (before: Record<string, number>, after: Record<string, number>) =>
  Object.keys(after)
    .map((k) => `${k} ${(after[k]! - (before[k] ?? 0)).toFixed(2)} s`)
    .join(", ");

/** The process groups of a flowd run: this process (named `self`), the API and workers, Postgres, Redis. */
export async function clusterProcesses(cluster: Cluster, self: string): Promise<Record<string, number[]>> {
  return {
    [self]: [process.pid],
    api: cluster.apis.map((a) => a.proc.proc.pid),
    worker: cluster.workers.map((w) => w.proc.pid),
    postgres: await pidsNamed("postgres"),
    redis: await pidsNamed("redis-server"),
  };
}

/** This database's commits and rows written (inserted, updated, deleted) so far, from pg_stat_database. */
export async function postgresWrites(sql: Sql): Promise<{ commits: number; rows: number }> {
  const [r] = await sql<{ commits: string; rows: string }[]>`
    select xact_commit::text as commits, (tup_inserted + tup_updated + tup_deleted)::text as rows
    from pg_stat_database where datname = current_database()`;
  return { commits: Number(r!.commits), rows: Number(r!.rows) };
}

/**
 * Postgres work per job over a measured stretch: commits and rows written (pg_stat_database) and
 * rows inserted / updated in user tables (pg_stat_user_tables), read before and after. Postgres
 * publishes these counters lazily (a backend reports at most once a second), so `after` waits that long first.
 */
export async function postgresPerJob(sql: Sql) {
  const read = async () => {
    const [r] = await sql<{ commits: string; ins: string; upd: string }[]>`
      select (select xact_commit from pg_stat_database where datname = current_database())::text as commits,
             (select coalesce(sum(n_tup_ins), 0) from pg_stat_user_tables)::text as ins,
             (select coalesce(sum(n_tup_upd), 0) from pg_stat_user_tables)::text as upd`;
    return { commits: Number(r!.commits), ins: Number(r!.ins), upd: Number(r!.upd) };
  };
  const before = await read();
  return {
    async after(jobs: number) {
      await Bun.sleep(1_100);
      await sql`select pg_stat_clear_snapshot()`;
      const now = await read();
      return { commits: (now.commits - before.commits) / jobs, inserts: (now.ins - before.ins) / jobs, updates: (now.upd - before.upd) / jobs };
    },
  };
}

export type PostgresPerJob = Awaited<ReturnType<Awaited<ReturnType<typeof postgresPerJob>>["after"]>>;

/** Median of each per-job figure, as one line. */
export const postgresLine = (xs: PostgresPerJob[]) =>
  `postgres per job: ${median(xs.map((x) => x.commits)).toFixed(3)} commits, ${median(xs.map((x) => x.inserts)).toFixed(2)} rows inserted, ${median(xs.map((x) => x.updates)).toFixed(2)} rows updated`;
