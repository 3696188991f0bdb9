import { join } from "node:path";
import type { Subprocess } from "bun";

export const REPO = join(import.meta.dir, "../..");

export interface FlowdProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  lines: string[];
  stderr: () => string;
  waitForLine(match: RegExp, ms?: number): Promise<string>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number>;
}

/** The command that runs flowd: the compiled binary when FLOWD_BIN is set, the sources otherwise. */
export function flowdCommand(args: string[], bin = process.env.FLOWD_BIN): string[] {
  // FLOWD_CPU_PROF=dir: each flowd process from sources writes a CPU profile there on exit.
  const profile = process.env.FLOWD_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.FLOWD_CPU_PROF}`] : [];
  return bin ? [bin, ...args] : [process.execPath, ...profile, join(REPO, "src/cli.ts"), ...args];
}

/** flowd with only the given environment (and PATH, HOME): what the machine has set must not leak in. */
function start(args: string[], env: Record<string, string>, opts: { bin?: string; cwd?: string }) {
  return Bun.spawn(flowdCommand(args, opts.bin), {
    cwd: opts.cwd ?? REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

export function spawnFlowd(args: string[], env: Record<string, string>, opts: { bin?: string; cwd?: string } = {}): FlowdProcess {
  const proc = start(args, env, opts);
  const lines: string[] = [];
  let err = "";
  const waiters = new Set<() => void>();
  (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      for (const w of waiters) w();
    }
    if (buf) lines.push(buf);
    for (const w of waiters) w();
  })();
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  return {
    proc,
    lines,
    stderr: () => err,
    waitForLine(match, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.find((l) => match.test(l));
          if (line) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(line);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`flowd exited (${proc.exitCode ?? proc.signalCode}) before printing ${match}:\n${lines.join("\n")}\n${err}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no line matching ${match} within ${ms} ms:\n${lines.slice(-20).join("\n")}\n${err}`));
        }, ms);
        waiters.add(check);
        check();
        proc.exited.then(() => setTimeout(check, 50));
      });
    },
    async stop(signal = "SIGTERM", ms = 20_000) {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), ms);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs flowd to completion and returns what it printed. */
export async function runFlowd(args: string[], env: Record<string, string>, opts: { bin?: string; cwd?: string } = {}) {
  const proc = start(args, env, opts);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}
