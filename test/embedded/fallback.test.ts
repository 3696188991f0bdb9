/**
 * Plain `flowd` with DATABASE_URL and REDIS_URL unset, in a network namespace of its own where
 * nothing answers at 127.0.0.1:5432, runs as flowd dev with no Redis either (fallback-driver.ts does the steps inside).
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "../helpers/process";

const root = mkdtempSync(join(tmpdir(), "flowd-fallback-"));
chmodSync(root, 0o755);
afterAll(() => rmSync(root, { recursive: true, force: true }));

// A network namespace needs root (or user namespaces) and iproute2 to bring its loopback up; CI runs as root.
const canUnshare = Bun.which("ip") !== null && Bun.spawnSync(["unshare", "-n", "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

test.skipIf(!canUnshare)("flowd with nothing at the default address runs as flowd dev: flow watched on a socket, restart, still there", async () => {
  const driver = Bun.spawn(["unshare", "-n", "--", process.execPath, join(import.meta.dir, "fallback-driver.ts"), join(root, "data"), root], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(driver.stdout).text(), new Response(driver.stderr).text(), driver.exited]);
  const last = out.trim().split("\n").at(-1) ?? "";
  let report: Record<string, unknown>;
  try {
    report = JSON.parse(last);
  } catch {
    throw new Error(`the driver printed no report:\n${out}\n${err}`);
  }
  expect(report.error).toBeUndefined();
  expect(report.postgresAnswered).toBe(false);
  expect(report.redisAnswered).toBe(false);
  expect(report.fallbackLine).toContain(
    `DATABASE_URL is unset and nothing answers at 127.0.0.1:5432: starting an embedded Postgres in ${join(root, "data")} (as flowd dev)`,
  );
  expect(report.created).toBe(201);
  expect(report.socketSawCompleted).toBe(true);
  expect(report.firstExit).toBe(0);
  expect(report.sameToken).toBe(true);
  expect(report.afterRestart).toBe("completed");
  expect(report.secondExit).toBe(0);
  expect(report.postgresPortFreeAfter).toBe(true);
}, 300_000);
