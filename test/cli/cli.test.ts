import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseArgs, UsageError, USAGE } from "../../src/cli";
import { EnvSchema } from "../../src/config";
import { createTestDatabase } from "../helpers/db";
import { runFlowd } from "../helpers/process";
import { REDIS_URL } from "../helpers/services";

describe("parseArgs", () => {
  test("no arguments run every role", () => {
    expect(parseArgs([])).toEqual({ kind: "run", role: "all" });
  });

  test("--role=NAME and --role NAME choose the role", () => {
    expect(parseArgs(["--role=api"])).toEqual({ kind: "run", role: "api" });
    expect(parseArgs(["--role", "worker"])).toEqual({ kind: "run", role: "worker" });
    expect(parseArgs(["--role=all"])).toEqual({ kind: "run", role: "all" });
  });

  test("migrate", () => {
    expect(parseArgs(["migrate"])).toEqual({ kind: "migrate" });
  });

  test("token create --user NAME, and --user=NAME", () => {
    expect(parseArgs(["token", "create", "--user", "alice"])).toEqual({ kind: "token-create", user: "alice" });
    expect(parseArgs(["token", "create", "--user=bob@example.com"])).toEqual({ kind: "token-create", user: "bob@example.com" });
  });

  test("types [--out FILE]", () => {
    expect(parseArgs(["types"])).toEqual({ kind: "types", out: "flowd.d.ts" });
    expect(parseArgs(["types", "--out", "x/h.d.ts"])).toEqual({ kind: "types", out: "x/h.d.ts" });
    expect(parseArgs(["types", "--out=h.d.ts"])).toEqual({ kind: "types", out: "h.d.ts" });
    expect(() => parseArgs(["types", "--bogus"])).toThrow(UsageError);
  });

  test("--help and --version", () => {
    expect(parseArgs(["--help"])).toEqual({ kind: "help" });
    expect(parseArgs(["--version"])).toEqual({ kind: "version" });
  });

  test.each([
    [["--bogus"]],
    [["--role=nope"]],
    [["--role"]],
    [["--role=api", "extra"]],
    [["migrate", "now"]],
    [["--help", "more"]],
    [["token"]],
    [["token", "delete"]],
    [["token", "create"]],
    [["token", "create", "--user"]],
    [["token", "create", "--user", "has space"]],
    [["token", "create", "--user", "alice", "--admin"]],
  ])("%p is a usage error", (argv) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
  });

  test("the usage error names what was wrong", () => {
    expect(() => parseArgs(["--bogus"])).toThrow(/--bogus/);
    expect(() => parseArgs(["--role=nope"])).toThrow(/nope/);
    expect(() => parseArgs(["token", "create"])).toThrow(/--user/);
  });
});

describe("flowd process: arguments", () => {
  test("--help prints usage on stdout and exits 0", async () => {
    const r = await runFlowd(["--help"], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage");
    expect(r.stdout).toBe(USAGE);
    expect(r.stderr).toBe("");
  });

  test("--help names every environment variable flowd reads", () => {
    for (const name of Object.keys(EnvSchema.properties)) expect(USAGE).toContain(name);
  });

  test("--version prints the version and exits 0", async () => {
    const r = await runFlowd(["--version"], {});
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("flowd 0.1.0");
  });

  test("--help and --version need no valid environment", async () => {
    const r = await runFlowd(["--help"], { PORT: "abc" });
    expect(r.code).toBe(0);
  });

  test.each([[["--bogus"]], [["--role=nope"]], [["token", "create"]]])("%p exits 2 with usage on stderr", async (argv) => {
    const r = await runFlowd(argv, {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Usage");
    expect(r.stdout).toBe("");
  });

  test("an invalid environment exits 1 naming every invalid variable", async () => {
    const r = await runFlowd(["migrate"], { PORT: "abc", LOG_LEVEL: "loud" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("PORT");
    expect(r.stderr).toContain("LOG_LEVEL");
    expect(r.stderr).not.toContain("    at ");
  });
});

describe("flowd process: unreachable services", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  /** stderr must be exactly one line, naming the service and the masked URL, with no stack trace. */
  function expectOneLine(stderr: string, service: string, maskedUrlPart: string) {
    const lines = stderr.split("\n").filter((l) => l.trim() !== "");
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toContain(service);
    expect(line).toContain(maskedUrlPart);
    expect(line).toContain("***");
    expect(stderr).not.toContain("secret");
    expect(stderr).not.toContain("    at ");
  }

  test("unreachable Postgres: exit 1, one line naming Postgres and the masked URL", async () => {
    const r = await runFlowd(["--role=api"], {
      DATABASE_URL: "postgres://postgres:secret@127.0.0.1:1/x",
      REDIS_URL,
      PORT: "0",
      LOG_LEVEL: "silent",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "Postgres", "127.0.0.1:1");
    expect(r.stdout).not.toContain("secret");
  });

  test("unreachable Postgres for migrate: same one line", async () => {
    const r = await runFlowd(["migrate"], { DATABASE_URL: "postgres://postgres:secret@127.0.0.1:1/x", LOG_LEVEL: "silent" });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "Postgres", "127.0.0.1:1");
  });

  test("unreachable Redis: exit 1, one line naming Redis and the masked URL", async () => {
    const r = await runFlowd(["--role=api"], {
      DATABASE_URL: db.url,
      REDIS_URL: "redis://:secret@127.0.0.1:1",
      PORT: "0",
      LOG_LEVEL: "silent",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "Redis", "127.0.0.1:1");
    expect(r.stdout).not.toContain("secret");
  });

  test("unreachable Redis for a worker: same one line", async () => {
    const r = await runFlowd(["--role=worker"], {
      DATABASE_URL: db.url,
      REDIS_URL: "redis://:secret@127.0.0.1:1",
      LOG_LEVEL: "silent",
    });
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, "Redis", "127.0.0.1:1");
  });
});
