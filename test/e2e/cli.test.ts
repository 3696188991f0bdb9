import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBinary } from "../helpers/binary";
import { runFlowd } from "../helpers/process";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * The client commands of the compiled binary against a running API and worker: every command in
 * --json mode is held against the REST API's own answer, and bad input against its exit code.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-cli-"));
const bin = join(dir, "flowd");
let stack: Stack;
/** How many failed flows the bulk retry below retries: the issue's 5,000 (about 26 s on a quiet machine); FLOWD_CLI_BULK_FLOWS to change it. */
const FAILED = Number(process.env.FLOWD_CLI_BULK_FLOWS ?? 5000);
/** Above that retry, under every flow this file creates. */
const BULK_MAX = FAILED + 100;

beforeAll(async () => {
  prepareBinary(bin);
  stack = await startStack({ workers: 1, tag: "cli", env: { FLOWD_BULK_MAX: String(BULK_MAX) } });
}, 180_000);
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The binary as a client: its own config folder, FLOWD_URL/FLOWD_TOKEN unless `env` says otherwise. */
function cli(args: string[], env: Record<string, string> = {}) {
  return runFlowd(args, { XDG_CONFIG_HOME: join(dir, "config"), FLOWD_URL: stack.baseUrl, FLOWD_TOKEN: stack.token, ...env }, { bin, cwd: dir });
}
async function cliJson(args: string[], env: Record<string, string> = {}) {
  const r = await cli([...args, "--json"], env);
  if (r.code !== 0) throw new Error(`flowd ${args.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  expect(r.stdout.trim().split("\n")).toHaveLength(1);
  expect(r.stdout).not.toContain("\x1b[");
  return JSON.parse(r.stdout);
}
const flowFile = (name: string, body: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(body));
  return path;
};

async function createFlows(bodies: unknown[], concurrency = 16): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < bodies.length; i += concurrency) {
    const replies = await Promise.all(bodies.slice(i, i + concurrency).map((b) => stack.http("POST", "/v1/flows", b)));
    for (const r of replies) {
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
  }
  return ids;
}
const allFinished = (ids: string[], ms = 60_000) =>
  waitFor(
    async () => Number((await stack.database.sql`select count(*)::int as n from flows where id = any(${ids}) and status <> 'running'`)[0]!.n) === ids.length,
    ms,
    `${ids.length} flows finished`,
  );

describe("login and bad input", () => {
  test("login checks the token and stores URL and token with mode 0600", async () => {
    const home = join(dir, "login-home");
    const r = await runFlowd(["login", "--url", stack.baseUrl, "--token", stack.token, "--context", "local"], { XDG_CONFIG_HOME: home }, { bin });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const path = join(home, "flowd", "config.json");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ current: "local", contexts: { local: { url: stack.baseUrl, token: stack.token } } });
    // The stored context is used without FLOWD_URL / FLOWD_TOKEN.
    const list = await runFlowd(["flows", "list", "--json"], { XDG_CONFIG_HOME: home }, { bin });
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual((await stack.http("GET", "/v1/flows")).body);
    // A wrong token is refused and not stored.
    const bad = await runFlowd(["login", "--url", stack.baseUrl, "--token", "nope", "--context", "other"], { XDG_CONFIG_HOME: home }, { bin });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("flowd login");
    expect(Object.keys(JSON.parse(readFileSync(path, "utf8")).contexts)).toEqual(["local"]);
  });

  test("login reads the token from stdin when --token is not given", async () => {
    const home = join(dir, "stdin-home");
    const proc = Bun.spawn([bin, "login", "--url", stack.baseUrl], {
      env: { PATH: process.env.PATH ?? "", HOME: dir, XDG_CONFIG_HOME: home },
      stdin: new TextEncoder().encode(`${stack.token}\n`),
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(0);
    expect(await new Response(proc.stdout).text()).toContain("as context 'default'");
    expect(JSON.parse(readFileSync(join(home, "flowd", "config.json"), "utf8")).contexts.default.token).toBe(stack.token);
  });

  test("a wrong or missing token: one line naming flowd login, exit 1", async () => {
    const wrong = await cli(["flows", "list"], { FLOWD_TOKEN: "wrong" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split("\n")).toHaveLength(1);
    expect(wrong.stderr).toContain("flowd login");
    const missing = await runFlowd(["flows", "list"], { XDG_CONFIG_HOME: join(dir, "empty") }, { bin });
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(missing.stderr).toContain("flowd login");
  });

  test("an unreachable URL: one line with the URL, exit 1", async () => {
    const r = await cli(["flows", "list"], { FLOWD_URL: "http://127.0.0.1:9" });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("http://127.0.0.1:9");
  });

  test.each([[["flows", "frob"]], [["flows", "list", "--bogus"]], [["flows", "get"]], [["jobs", "watch"]], [["run"]], [["flows", "list", "--since", "yesterday"]], [["schedules", "get"]]])(
    "%p is a usage error: exit 2, usage on stderr",
    async (args) => {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("Usage");
    },
  );

  test("a file that is not JSON, or not a flow: exit 1 with the reason (the server's details readable)", async () => {
    const notJson = join(dir, "bad.json");
    writeFileSync(notJson, "{ nope");
    const r1 = await cli(["run", notJson]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain("is not JSON");
    const r2 = await cli(["run", flowFile("not-a-flow.json", { name: "x", root: { name: "echo", children: "no" } })]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/\/root\/children/);
    const r3 = await cli(["run", join(dir, "missing.json")]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain("ENOENT");
  });
});

describe("every command in --json mode matches the REST API", () => {
  test("every route the client calls is in the OpenAPI document", async () => {
    const { ROUTES } = await import("../../src/client/api");
    const doc = (await stack.http("GET", "/docs/json")).body;
    const missing = ROUTES.filter((r) => {
      const [method, path] = r.split(" ");
      return !doc.paths[path!]?.[method!.toLowerCase()];
    });
    expect(missing).toEqual([]);
  });

  test("run --wait, flows list/get, jobs list/get, schedules/webhooks/handlers/workers list", async () => {
    const flow = await cliJson(["run", flowFile("ok.json", { name: "cli-ok", root: { name: "echo", data: { a: 1 }, children: [{ name: "echo", data: { b: 2 } }] } }), "--wait"]);
    expect(flow.status).toBe("completed");
    expect(flow).toEqual((await stack.http("GET", `/v1/flows/${flow.id}`)).body);
    expect(await cliJson(["flows", "get", flow.id])).toEqual((await stack.http("GET", `/v1/flows/${flow.id}`)).body);
    expect(await cliJson(["flows", "list", "--name", "cli-ok"])).toEqual((await stack.http("GET", "/v1/flows?name=cli-ok")).body);
    expect(await cliJson(["flows", "list", "--status", "completed", "--since", "1h", "--limit", "5"])).toEqual(
      (await stack.http("GET", `/v1/flows?status=completed&limit=5`)).body,
    );
    const job = (await stack.http("POST", "/v1/jobs", { name: "echo", data: { j: 1 } })).body;
    await waitFor(async () => (await stack.http("GET", `/v1/jobs/${job.id}`)).body.status === "completed", 20_000, "job completed");
    expect(await cliJson(["jobs", "get", job.id])).toEqual((await stack.http("GET", `/v1/jobs/${job.id}`)).body);
    expect(await cliJson(["jobs", "list", "--name", "echo"])).toEqual((await stack.http("GET", "/v1/jobs?name=echo")).body);
    await stack.http("POST", "/v1/schedules", { name: "s", every: 3_600_000, job: { name: "echo" } });
    await stack.http("POST", "/v1/webhooks", { url: "http://127.0.0.1:9/hook", events: ["*"] });
    for (const what of ["schedules", "webhooks", "handlers", "workers"]) {
      const mine = await cliJson([what, "list"]);
      const rest = (await stack.http("GET", `/v1/${what}`)).body;
      if (what === "workers") expect(mine.items.map((w: any) => w.id)).toEqual(rest.items.map((w: any) => w.id));
      else expect(mine).toEqual(rest);
    }
  }, 60_000);

  test("jobs watch: a line per status the job is seen in, its last the REST view; exit 0 completed, 1 failed", async () => {
    const slow = (await stack.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 800 } })).body;
    const watched = await cli(["jobs", "watch", slow.id, "--json"]);
    expect(watched.code).toBe(0);
    const lines = watched.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.at(-1)).toEqual((await stack.http("GET", `/v1/jobs/${slow.id}`)).body);
    expect(lines.at(-1).status).toBe("completed");
    expect(new Set(lines.map((l) => `${l.status}:${l.attemptsMade}`)).size).toBe(lines.length);
    const failing = (await stack.http("POST", "/v1/jobs", { name: "fail", data: { message: "nope" } })).body;
    const failed = await cli(["jobs", "watch", failing.id]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain("failed");
    expect(failed.stdout).toContain("nope");
    expect(failed.stdout).not.toContain("\x1b[");
    const missing = await cli(["jobs", "watch", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
  }, 60_000);

  test("run --definition with --input @file, and single cancel/retry/delete", async () => {
    expect((await stack.http("PUT", "/v1/definitions/greet", { input: { type: "object" }, flow: { name: "greet", root: { name: "echo", data: { who: { $input: "/who" } } } } })).status).toBeLessThan(300);
    const input = join(dir, "input.json");
    writeFileSync(input, JSON.stringify({ who: "ada" }));
    const run = await cliJson(["run", "--definition", "greet", "--input", `@${input}`, "--wait"]);
    expect(run.status).toBe("completed");
    expect(run.root.data).toEqual({ who: "ada" });
    const failing = await cliJson(["run", flowFile("fail.json", { name: "cli-fail", root: { name: "fail", data: { message: "nope" }, opts: { attempts: 1 } } })]);
    await allFinished([failing.id]);
    const retried = await cliJson(["flows", "retry", failing.id]);
    expect(retried).toEqual({ ...(await stack.http("GET", `/v1/flows/${failing.id}`)).body, status: retried.status, updatedAt: retried.updatedAt, root: retried.root });
    expect(retried.id).toBe(failing.id);
    await allFinished([failing.id]);
    const del = await cliJson(["flows", "delete", failing.id]);
    expect(del).toEqual({ id: failing.id, deleted: true });
    expect((await stack.http("GET", `/v1/flows/${failing.id}`)).status).toBe(404);
    const slow = (await stack.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 30_000 } })).body;
    const cancelled = await cliJson(["jobs", "cancel", slow.id]);
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled).toEqual((await stack.http("GET", `/v1/jobs/${slow.id}`)).body);
    // A second cancel: the server's 409, one line, exit 1.
    const again = await cli(["jobs", "cancel", slow.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already finished");
  }, 60_000);
});

describe("shell completion", () => {
  test("completion bash completes commands, subcommands and flags", async () => {
    const r = await cli(["completion", "bash"]);
    expect(r.code).toBe(0);
    const script = join(dir, "completion.bash");
    writeFileSync(script, r.stdout);
    const complete = (words: string[]) => {
      const cmd = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _flowd; echo "\${COMPREPLY[@]}"`;
      return Bun.spawnSync(["bash", "-c", cmd], { stdout: "pipe" }).stdout.toString().trim();
    };
    expect(complete(["flowd", "fl"])).toBe("flows");
    expect(complete(["flowd", "flows", "re"])).toBe("retry");
    expect(complete(["flowd", "flows", "retry", "--st"])).toBe("--status");
    expect(complete(["flowd", "run", "--w"])).toBe("--wait --watch");
    expect((await cli(["completion", "fish"])).code).toBe(2);
  });
});

describe("human output", () => {
  test("a graph flow's jobs with what each waits for; no colour codes when stdout is not a terminal", async () => {
    const flow = await cliJson(["run", flowFile("graph.json", { name: "cli-graph", jobs: [{ key: "extract", name: "echo" }, { key: "load", name: "echo", dependsOn: ["extract"] }] }), "--wait"]);
    const r = await cli(["flows", "get", flow.id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("cli-graph  completed");
    expect(r.stdout).toMatch(/✓ load echo completed c[0-9a-z]{24} ← extract/);
    expect(r.stdout).toContain("2/2 jobs  100%");
    expect(r.stdout).not.toContain("\x1b[");
    const list = await cli(["flows", "list", "--name", "cli-graph"]);
    expect(list.stdout).toMatch(/^ID +NAME +STATUS +JOBS +CREATED\n/);
    expect(list.stdout).toContain(flow.id);
    const none = await cli(["flows", "list", "--name", "no-such-name"]);
    expect(none.stdout).toBe("No flows match.\n");
  }, 60_000);

  test("single jobs by filter: a bulk delete of the finished ones", async () => {
    const created = await Promise.all([1, 2, 3].map((i) => stack.http("POST", "/v1/jobs", { name: "echo", data: { batch: "cli-jobs", i } })));
    const ids = created.map((r) => r.body.id as string);
    await waitFor(
      async () => Number((await stack.database.sql`select count(*)::int as n from jobs where id = any(${ids}) and status = 'completed'`)[0]!.n) === 3,
      20_000,
      "jobs completed",
    );
    const dry = await cliJson(["jobs", "delete", "--data", '{"batch":"cli-jobs"}', "--status", "completed", "--dry-run"]);
    expect(dry.matched).toBe(3);
    const op = await cliJson(["jobs", "delete", "--data", '{"batch":"cli-jobs"}', "--status", "completed", "--yes"]);
    expect(op).toMatchObject({ kind: "jobs.delete", status: "completed", matched: 3, done: 3 });
    for (const id of ids) expect((await stack.http("GET", `/v1/jobs/${id}`)).status).toBe(404);
  }, 60_000);
});

describe("bulk actions from the command line", () => {
  test(`retry by filter of ${FAILED} failed flows: dry run first, confirmation, counts right, each retried once`, async () => {
    const failed = await createFlows(Array.from({ length: FAILED }, (_, i) => ({ name: `etl-${i}`, root: { name: "fail", data: { message: "outage" }, opts: { attempts: 1 } } })));
    const others = await createFlows([{ name: "etl-fine", root: { name: "echo" } }, { name: "other", root: { name: "fail", opts: { attempts: 1 } } }]);
    await allFinished([...failed, ...others], 120_000);
    const dry = await cliJson(["flows", "retry", "--status", "failed", "--name", "etl", "--since", "1h", "--dry-run"]);
    expect(dry.matched).toBe(FAILED);
    expect(dry).toEqual((await stack.http("POST", "/v1/flows/bulk/retry", { status: "failed", name: "etl", dryRun: true })).body);
    // Without --yes and no terminal to ask on: refused, nothing done.
    const unconfirmed = await cli(["flows", "retry", "--status", "failed", "--name", "etl"]);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toContain(`${FAILED} flows match`);
    expect(unconfirmed.stderr).toContain("--yes");
    const started = Date.now();
    const op = await cliJson(["flows", "retry", "--status", "failed", "--name", "etl", "--since", "1h", "--yes"]);
    const tookMs = Date.now() - started;
    expect(op).toMatchObject({ kind: "flows.retry", status: "completed", matched: FAILED, done: FAILED, skipped: 0, failed: 0 });
    expect(op).toEqual((await stack.http("GET", `/v1/operations/${op.id}`)).body);
    const generations = await stack.database.sql<{ id: string; generation: number }[]>`select id, generation from flows where id = any(${[...failed, ...others]})`;
    for (const g of generations) expect(g.generation).toBe(failed.includes(g.id) ? 1 : 0);
    console.log(`bulk retry of ${FAILED} flows through the CLI: ${tookMs} ms`);
    // A filter matching nothing says so and exits 0.
    const none = await cli(["flows", "retry", "--name", "no-such-flow", "--yes"]);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain("No flows match");
    expect(await cliJson(["operations", "get", op.id])).toEqual(op);
    const ops = await cliJson(["operations", "list"]);
    expect(ops).toEqual((await stack.http("GET", "/v1/operations")).body);
  }, 240_000 + FAILED * 100);

  test("bulk cancel racing the flows' own completion leaves each flow in exactly one final state", async () => {
    const N = 200;
    const ids = await createFlows(Array.from({ length: N }, (_, i) => ({ name: `race-${i}`, root: { name: "sleep", data: { ms: (i % 20) * 150 } } })));
    const op = await cliJson(["flows", "cancel", "--name", "race-", "--yes"]);
    expect(op.status).toBe("completed");
    expect(op.matched).toBe(N);
    expect(op.done + op.skipped).toBe(N);
    expect(op.failed).toBe(0);
    for (const r of op.reasons) expect(r.code).toBe("flow_finished");
    await allFinished(ids);
    const rows = await stack.database.sql<{ status: string; n: number }[]>`select status, count(*)::int as n from flows where id = any(${ids}) group by status`;
    const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    expect(byStatus.cancelled ?? 0).toBe(op.done);
    expect(byStatus.completed ?? 0).toBe(op.skipped);
    // Exactly one final flow event per flow, matching its status.
    const finals = await stack.database.sql<{ flow_id: string; n: number; type: string }[]>`
      select flow_id, count(*)::int as n, min(type) as type from events
      where flow_id = any(${ids}) and type in ('flow.completed', 'flow.failed', 'flow.cancelled') group by flow_id`;
    expect(finals).toHaveLength(N);
    for (const f of finals) expect(f.n).toBe(1);
    console.log(`bulk cancel race: ${op.done} cancelled, ${op.skipped} finished first`);
  }, 120_000);

  test("a bulk over FLOWD_BULK_MAX prints the server's message, exit 1, nothing done", async () => {
    const total = Number((await stack.database.sql`select count(*)::int as n from flows`)[0]!.n);
    expect(total).toBeGreaterThan(BULK_MAX);
    const r = await cli(["flows", "delete", "--since", "1d", "--yes"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("FLOWD_BULK_MAX");
    expect(r.stderr).toContain("narrow");
    expect(Number((await stack.database.sql`select count(*)::int as n from flows`)[0]!.n)).toBe(total);
  });
});
