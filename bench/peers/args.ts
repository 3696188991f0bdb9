/** `bun run bench peers [--quick] [--reps=N] [--only=a,b]`: what to run, refused with a clear error when malformed. */

export const SYSTEMS = ["flowd", "bullmq", "bullmq-pg", "pg-boss", "graphile"] as const;
export type SystemKey = (typeof SYSTEMS)[number];

/** The sizes of one run: the full run is the comparison; `--quick` is a smoke check of the same code. */
export interface Sizes {
  reps: number;
  warmup: number;
  bulkJobs: number;
  bulkBatch: number;
  clients: number;
  singlesSeconds: number;
  flows: number;
  flowSize: number;
  latencyJobs: number;
  concurrency: number;
}

export const FULL: Sizes = {
  reps: 3,
  warmup: 200,
  bulkJobs: 20_000,
  bulkBatch: 1_000,
  clients: 16,
  singlesSeconds: 10,
  flows: 5,
  flowSize: 1_000,
  latencyJobs: 100,
  concurrency: 16,
};

export const QUICK: Sizes = { ...FULL, reps: 1, warmup: 20, bulkJobs: 2_000, singlesSeconds: 2, flows: 2, flowSize: 200, latencyJobs: 20 };

export interface PeersArgs {
  sizes: Sizes;
  systems: SystemKey[];
  quick: boolean;
}

export class PeersArgsError extends Error {}

export function parsePeersArgs(argv: string[]): PeersArgs {
  let quick = false;
  let reps: number | undefined;
  let systems: SystemKey[] = [...SYSTEMS];
  for (const arg of argv) {
    const [flag, value] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    if (flag === "--quick" && value === undefined) quick = true;
    else if (flag === "--reps") {
      if (value === undefined || !/^[1-9][0-9]?$/.test(value)) throw new PeersArgsError(`--reps takes a whole number from 1 to 99, got ${JSON.stringify(value ?? "")}`);
      reps = Number(value);
    } else if (flag === "--only") {
      const names = (value ?? "").split(",").filter(Boolean);
      const unknown = names.filter((n) => !(SYSTEMS as readonly string[]).includes(n));
      if (names.length === 0 || unknown.length > 0)
        throw new PeersArgsError(`--only takes a comma-separated list of ${SYSTEMS.join(", ")}; unknown: ${JSON.stringify(unknown.length ? unknown.join(",") : value ?? "")}`);
      // plain BullMQ is the baseline every ratio is taken against: it always runs.
      systems = SYSTEMS.filter((s) => s === "bullmq" || names.includes(s));
    } else throw new PeersArgsError(`unknown argument ${JSON.stringify(arg)}; usage: bun run bench peers [--quick] [--reps=N] [--only=${SYSTEMS.join(",")}]`);
  }
  const base = quick ? QUICK : FULL;
  return { quick, systems, sizes: { ...base, reps: reps ?? base.reps } };
}
