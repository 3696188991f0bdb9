import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { EmbeddedPostgresError } from "./errors";

/**
 * The folder `flowd dev` owns:
 *   postgres/           the cluster (PGDATA), owned by the user Postgres runs as
 *   postgres.log        what Postgres prints
 *   postgres-password   the `postgres` role's password (0600)
 *   token               the dev user's API token (0600), printed again at every start
 *   flowd.pid           the flowd dev using the folder now
 */
export interface DataDir {
  dir: string;
  pgdata: string;
  logFile: string;
  passwordFile: string;
  tokenFile: string;
  lockFile: string;
}

export const dataDirLayout = (dir: string): DataDir => {
  const abs = resolve(dir);
  return {
    dir: abs,
    pgdata: join(abs, "postgres"),
    logFile: join(abs, "postgres.log"),
    passwordFile: join(abs, "postgres-password"),
    tokenFile: join(abs, "token"),
    lockFile: join(abs, "flowd.pid"),
  };
};

/** Who Postgres runs as: the current user, or (Postgres refuses root) the `postgres` system user. */
export interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

const describe = (err: unknown) => (err as { code?: string }).code ?? (err as Error).message;

/** Creates the folder if needed and proves it writable; the error says what to do in one line. */
export function prepareDataDir(layout: DataDir, runAs: RunAs | undefined) {
  try {
    mkdirSync(layout.dir, { recursive: true });
    const probe = join(layout.dir, `.write-test-${process.pid}`);
    writeFileSync(probe, "");
    unlinkSync(probe);
  } catch (err) {
    throw new EmbeddedPostgresError(
      `the data folder ${layout.dir} is not writable (${describe(err)}): set FLOWD_DATA_DIR to a folder you can write, or fix its permissions`,
    );
  }
  if (runAs) {
    // Postgres runs as another user: it must enter this folder (not list it) and every folder above it.
    chmodSync(layout.dir, statSync(layout.dir).mode | 0o111);
    const blocked = blockedAncestor(layout.dir, runAs.uid);
    if (blocked)
      throw new EmbeddedPostgresError(
        `the data folder ${layout.dir} is inside ${blocked}, which user ${runAs.name} cannot enter (Postgres refuses to run as root, so flowd runs it as ${runAs.name}): set FLOWD_DATA_DIR to a folder outside it, such as /tmp/flowd`,
      );
  }
}

/** The first folder on the way to `path` that others (or `uid`, by ownership) cannot enter. */
export function blockedAncestor(path: string, uid: number): string | undefined {
  let dir = dirname(path);
  const chain: string[] = [];
  for (;;) {
    chain.unshift(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  for (const folder of chain) {
    const st = statSync(folder);
    const enters = st.uid === uid ? (st.mode & 0o100) !== 0 : (st.mode & 0o001) !== 0;
    if (!enters) return folder;
  }
  return undefined;
}

/** Refuses a folder another live flowd dev holds; takes it over from one that died. */
export function lockDataDir(layout: DataDir): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(layout.lockFile, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(layout.lockFile, "utf8").trim() === String(process.pid)) unlinkSync(layout.lockFile);
        } catch {
          // Already gone.
        }
      };
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    }
    const holder = Number.parseInt(readFileSync(layout.lockFile, "utf8"), 10);
    if (Number.isInteger(holder) && holder !== process.pid && alive(holder))
      throw new EmbeddedPostgresError(
        `the data folder ${layout.dir} is in use by another flowd dev (pid ${holder}): stop that one, or set FLOWD_DATA_DIR to another folder`,
      );
    unlinkSync(layout.lockFile);
  }
  throw new EmbeddedPostgresError(`cannot lock the data folder ${layout.dir} (${layout.lockFile} keeps coming back)`);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

/** The pid in a cluster's postmaster.pid when that process is still alive (a flowd killed with -9 leaves it running). */
export function runningPostmaster(pgdata: string): number | undefined {
  const file = join(pgdata, "postmaster.pid");
  if (!existsSync(file)) return undefined;
  const pid = Number.parseInt(readFileSync(file, "utf8"), 10);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  // A recycled pid is not our postmaster: on Linux its command line says so.
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("postgres")) return undefined;
  } catch {
    // No /proc (macOS): trust the live pid.
  }
  return pid;
}

/** Postgres refuses to run as root: as root, the `postgres` system user, created when missing. */
export function postgresRunAs(log: (msg: string) => void): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): RunAs | undefined => {
    try {
      const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
      const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
      return { uid, gid, name: "postgres" };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  try {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], { stdio: "ignore" });
  } catch (err) {
    throw new EmbeddedPostgresError(`flowd runs as root and Postgres refuses root, but creating a 'postgres' user failed (${describe(err)}): run flowd as another user`);
  }
  log("created the system user 'postgres' to run the embedded Postgres (Postgres refuses to run as root)");
  const created = lookup();
  if (!created) throw new EmbeddedPostgresError("created the system user 'postgres' but cannot look it up: run flowd as another user");
  return created;
}
