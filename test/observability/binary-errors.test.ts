import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createToken } from "../../src/services/tokens";
import { createTestDatabase } from "../helpers/db";
import { httpClient } from "../helpers/http";
import { REPO, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { promtool } from "./promtool";

/**
 * Errors stay readable after the build: a minifier that renames classes turns a failed parent's
 * `UnrecoverableError: child … failed` into `Pi: child … failed`. FLOWD_BIN points at a binary
 * built beforehand (CI); otherwise this file builds one with the project's build command.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-names-"));
let bin = process.env.FLOWD_BIN ?? "";
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const prefix = uniquePrefix("names");
let proc: FlowdProcess | undefined;

beforeAll(async () => {
  if (!bin) {
    bin = join(dir, "flowd");
    const build = Bun.spawnSync(["bun", "run", "build", "--outfile", bin], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  }
  db = await createTestDatabase();
}, 120_000);

afterAll(async () => {
  await proc?.stop("SIGTERM");
  await deletePrefix(prefix);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the compiled binary's errors", () => {
  test("a failed parent's error starts with a real class name, in the stack as in the sources", async () => {
    const env = { DATABASE_URL: db.url, REDIS_URL, FLOWD_PREFIX: prefix, PORT: "0", LOG_LEVEL: "info" };
    proc = spawnFlowd(["--role=all"], env, { bin, cwd: dir });
    const url = (JSON.parse(await proc.waitForLine(/"listening"/, 30_000)) as { url: string }).url;
    await proc.waitForLine(/"flowd ready"/, 30_000);
    const { token } = await createToken(db.database.db, "names");
    const http = httpClient(url, token);

    const created = await http("POST", "/v1/flows", { name: "named", root: { name: "echo", children: [{ name: "fail", data: { message: "child says no" } }] } });
    expect(created.status).toBe(201);
    const flow = await http("GET", `/v1/flows/${created.body.id}?wait=30`);
    expect(flow.body.status).toBe("failed");
    const parent = flow.body.root.error as { message: string; stack: string };
    expect(parent.stack).toStartWith("UnrecoverableError: child ");
    expect(parent.message).toContain("failed");
    const child = flow.body.root.children[0].error as { stack: string };
    expect(child.stack).toStartWith("Error: child says no");

    // --role=all: one registry holds the HTTP and the job metrics, and the whole scrape is clean.
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain("# TYPE flowd_job_run_seconds histogram");
    expect(text).toContain("# TYPE flowd_http_request_duration_seconds histogram");
    expect(await promtool(text)).toEqual({ code: 0, output: "" });
  }, 90_000);
});
