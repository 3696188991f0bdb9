import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBinary } from "../helpers/binary";
import { createTestDatabase } from "../helpers/db";
import { httpClient } from "../helpers/http";
import { connectWs } from "../helpers/ws-client";
import IORedis from "ioredis";
import { runFlowd, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { waitFor } from "../helpers/wait";
import { testPort } from "../helpers/ports";

/**
 * Handler modules through the compiled binary, run from a folder with nothing of flowd's beside it:
 * a module importing its own package from its node_modules runs in a flow; an API process that never
 * loaded the module validates names and data against the registry the worker wrote; bad modules stop
 * the worker with one line.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-modules-"));
const bin = join(dir, "flowd");
const modules = join(dir, "handlers");
const prefix = uniquePrefix("hm");
const port = testPort();
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
const procs: FlowdProcess[] = [];

const MODULE = `
import shout from "shout";
interface Ctx { data: { text: string }; children: Record<string, unknown>; log(line: string): void; progress(v: number | object): Promise<void>; job: { id: string; flowId?: string } }
export default {
  loud: {
    description: "Shouts its text.",
    data: { type: "object", required: ["text"], properties: { text: { type: "string", maxLength: 20 } } },
    async run(ctx: Ctx) {
      ctx.log("shouting " + ctx.data.text);
      await ctx.progress(50);
      return { said: shout(ctx.data.text), flowId: ctx.job.flowId ?? null };
    },
  },
  gather: { run: (ctx: Ctx) => ({ children: ctx.children }) },
  bigint: { run: () => ({ n: 10n }) },
  // Both ignore their signal: the outcome must not wait for them, nor change after.
  stubborn: { run: () => new Promise((r) => setTimeout(() => r({ late: true }), 1500)) },
  slow: { timeoutMs: 100, run: () => new Promise((r) => setTimeout(() => r({ late: true }), 1500)) },
  "timer-throw": { run: () => { setTimeout(() => { throw new Error("thrown in a timer"); }, 1); return new Promise((r) => setTimeout(() => r({ ok: true }), 50)); } },
};
`;

beforeAll(async () => {
  prepareBinary(bin);
  mkdirSync(join(modules, "node_modules/shout"), { recursive: true });
  writeFileSync(join(modules, "node_modules/shout/package.json"), JSON.stringify({ name: "shout", version: "1.0.0", main: "index.js" }));
  writeFileSync(join(modules, "node_modules/shout/index.js"), `module.exports = (s) => String(s).toUpperCase() + "!";`);
  writeFileSync(join(modules, "loud.ts"), MODULE);
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, REDIS_URL, FLOWD_PREFIX: prefix, PORT: String(port), LOG_LEVEL: "info", FLOWD_SHUTDOWN_TIMEOUT_MS: "5000" };
}, 120_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop("SIGKILL")));
  await deletePrefix(prefix);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("handler modules in the compiled binary", () => {
  test("every bad module stops the worker: exit 1, one line naming the file and handler, nothing started", async () => {
    const bad = join(dir, "bad");
    mkdirSync(bad);
    const file = (name: string, source: string) => {
      writeFileSync(join(bad, name), source);
      return join(bad, name);
    };
    const cases: [string, string, RegExp][] = [
      ["missing", join(bad, "missing.ts"), /missing\.ts: no such file or folder$/],
      ["throws", file("throws.ts", `throw new Error("boom at import");\nexport default {};`), /throws\.ts: does not load: boom at import/],
      ["syntax", file("syntax.ts", `export default { a: { run() { return ( } } };`), /syntax\.ts: does not load:/],
      ["not an object", file("number.ts", `export default 42;`), /number\.ts: the default export must be an object/],
      ["no run", file("norun.ts", `export default { "no-run": { data: {} } };`), /norun\.ts, handler 'no-run': run must be a function/],
      ["bad schema", file("schema.ts", `export default { s: { run() {}, data: { type: "nope" } } };`), /schema\.ts, handler 's': data is not a valid JSON Schema/],
      ["built-in name", file("builtin.ts", `export default { sleep: { run() {} } };`), /builtin\.ts, handler 'sleep': the name is taken by a built-in handler/],
      ["bad name", file("name.ts", `export default { "9lives": { run() {} } };`), /name\.ts, handler '9lives': the name must match/],
    ];
    for (const [what, path, message] of cases) {
      const run = await runFlowd(["--role=worker"], { ...env, FLOWD_HANDLERS: path }, { bin, cwd: dir });
      expect({ what, code: run.code }).toEqual({ what, code: 1 });
      const lines = run.stderr.trim().split("\n");
      expect({ what, lines: lines.length }).toEqual({ what, lines: 1 });
      expect(lines[0]).toMatch(/^flowd: handler module /);
      expect(lines[0]).toMatch(message);
      expect(run.stdout).not.toContain("flowd ready");
    }
    const twice = [file("one.ts", `export default { twice: { run() {} } };`), file("two.ts", `export default { twice: { run() {} } };`)];
    const run = await runFlowd(["--role=worker"], { ...env, FLOWD_HANDLERS: twice.join(",") }, { bin, cwd: dir });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(`flowd: handler module ${twice[1]}, handler 'twice': the name is already used by ${twice[0]}`);
  }, 60_000);

  test("a module with its own package runs in a flow; an API without the module validates against the registry", async () => {
    const created = await runFlowd(["token", "create", "--user", "modules"], env, { bin, cwd: dir });
    expect(created.code).toBe(0);
    const token = created.stdout.trim().split("\n").pop()!;
    const http = httpClient(`http://127.0.0.1:${port}`, token);
    const api = spawnFlowd(["--role=api"], env, { bin, cwd: dir });
    procs.push(api);
    await api.waitForLine(/"flowd ready"/);

    const flow = (children: unknown[]) => http("POST", "/v1/flows", { name: "m", root: { name: "gather", children } });
    const before = await flow([{ name: "loud", data: { text: "hi" } }]);
    expect(before.status).toBe(400);
    expect(before.body.error.code).toBe("unknown_handler");
    expect(before.body.error.message).toContain("queue 'flows'");

    const worker = spawnFlowd(["--role=worker"], { ...env, FLOWD_HANDLERS: modules }, { bin, cwd: dir });
    procs.push(worker);
    await worker.waitForLine(/"flowd ready"/);
    expect(worker.lines.some((l) => l.includes('"handler modules loaded"'))).toBe(true);

    const socket = await connectWs(`ws://127.0.0.1:${port}/v1/ws`, token);
    socket.send({ op: "subscribe", all: true });
    await socket.next((m) => m.type === "subscribed");

    // The worker's NOTIFY refreshes the API's cache: the create is accepted once it lands.
    const accepted = await waitFor(async () => {
      const res = await flow([{ name: "loud", data: { text: "hi" } }, { name: "echo", data: { x: 1 } }]);
      return res.status === 201 && res.body;
    }, 10_000, "the API to learn the module's handlers");
    const bad = await flow([{ name: "loud", data: { text: 5 } }]);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_job_data");
    expect(bad.body.error.details[0].path).toBe("/root/children/0/data/text");
    const missing = await flow([{ name: "loud", data: {} }]);
    expect(missing.body.error).toMatchObject({ code: "invalid_job_data", details: [{ path: "/root/children/0/data/text" }] });

    const done = await waitFor(async () => {
      const res = await http("GET", `/v1/flows/${accepted.id}?wait=5`);
      return res.body.status !== "running" && res.body;
    }, 20_000, "the flow to finish");
    expect(done.status).toBe("completed");
    const [loud, echo] = done.root.children;
    expect(loud.result).toEqual({ said: "HI!", flowId: accepted.id });
    expect(done.root.result.children).toEqual({ [loud.jobId]: { said: "HI!", flowId: accepted.id }, [echo.jobId]: { data: { x: 1 }, children: {} } });
    // ctx.log and ctx.progress: in the job's view and on the socket.
    expect(loud.log).toMatchObject({ lines: [{ line: "shouting hi" }], dropped: 0 });
    expect(loud.progress).toBe(50);
    expect(echo.log).toBeUndefined();
    const logged = await socket.next((m) => m.event === "job.log" && m.jobId === loud.id);
    expect(logged).toMatchObject({ flowId: accepted.id, data: { id: loud.id, lines: [{ line: "shouting hi" }] } });
    const progressed = await socket.next((m) => m.event === "job.progress" && m.jobId === loud.id, 10_000);
    expect(progressed.data).toEqual({ id: loud.id, progress: 50 });
    socket.close();

    const handlers = await http("GET", "/v1/handlers");
    expect(handlers.status).toBe(200);
    const loudEntry = handlers.body.items.find((h: any) => h.name === "loud" && h.queue === "flows");
    expect(loudEntry).toMatchObject({ source: "module", description: "Shouts its text.", workers: 1, dataSchema: { required: ["text"] } });
    expect(handlers.body.items.find((h: any) => h.name === "echo" && h.queue === "jobs")).toMatchObject({ source: "builtin" });
    const docs = (await http("GET", "/docs/json")).body;
    expect(Object.keys(docs.paths)).toEqual(expect.arrayContaining(["/v1/handlers", "/v1/workers"]));
    const workers = await http("GET", "/v1/workers");
    expect(workers.body.items).toHaveLength(1);
    expect(workers.body.items[0]).toMatchObject({ kind: "flowd", pid: worker.proc.pid, concurrency: 16 });
    expect(workers.body.items[0].handlers).toContain("flows:loud");

    // Junk from user code fails the job, and the worker carries on.
    const single = async (name: string) => (await http("POST", "/v1/jobs", { name })).body.id as string;
    const [bigint, timer] = [await single("bigint"), await single("timer-throw")];
    const finished = async (id: string) =>
      waitFor(async () => {
        const res = await http("GET", `/v1/jobs/${id}?wait=5`);
        return ["completed", "failed"].includes(res.body.status) && res.body;
      }, 20_000, `job ${id} to finish`);
    const big = await finished(bigint);
    expect(big.status).toBe("failed");
    expect(big.error.message).toContain("not JSON: 'n' is a BigInt");
    expect((await finished(timer)).status).toBe("completed");
    const slow = await finished(await single("slow"));
    expect(slow.status).toBe("failed");
    expect(slow.error.message).toContain("did not finish within its timeoutMs (100 ms)");

    // A cancel aborts at once; the handler's late answer never makes the job completed.
    const stubborn = await single("stubborn");
    await waitFor(async () => (await http("GET", `/v1/jobs/${stubborn}`)).body.status === "active", 10_000, "stubborn to start");
    expect((await http("POST", `/v1/jobs/${stubborn}/cancel`)).body.status).toBe("cancelled");
    const redis = new IORedis(REDIS_URL);
    await waitFor(async () => (await redis.hget(`${prefix}:jobs:${stubborn}`, "failedReason")) ?? (await redis.exists(`${prefix}:jobs:${stubborn}`)) === 0, 10_000, "BullMQ to end the cancelled attempt");
    redis.disconnect();
    await waitFor(async () => worker.lines.some((l) => l.includes(stubborn) && l.includes("job attempt failed")), 10_000, "the failed attempt logged");
    expect((await http("GET", `/v1/jobs/${stubborn}`)).body.status).toBe("cancelled");
    expect(worker.proc.exitCode).toBeNull();

    // A registered handler stays known while its workers are down.
    expect(await worker.stop("SIGTERM")).toBe(0);
    const later = await flow([{ name: "loud", data: { text: "later" } }]);
    expect(later.status).toBe(201);
    const after = await http("GET", "/v1/handlers");
    expect(after.body.items.find((h: any) => h.name === "loud" && h.queue === "flows").workers).toBe(0);
    expect((await http("GET", "/v1/workers")).body.items).toHaveLength(0);
    expect(await api.stop("SIGTERM")).toBe(0);
  }, 90_000);
});
