import { cpus } from "node:os";

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
