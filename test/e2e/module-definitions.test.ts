import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBinary } from "../helpers/binary";
import { createTestDatabase } from "../helpers/db";
import { httpClient } from "../helpers/http";
import { runFlowd, spawnFlowd, type FlowdProcess } from "../helpers/process";
import { deletePrefix, uniquePrefix } from "../helpers/redis";
import { REDIS_URL } from "../helpers/services";
import { testPort } from "../helpers/ports";

/**
 * Flow definitions shipped in a handler module (`export const definitions`), through the compiled
 * binary with the API and the worker in processes of their own: the worker stores them at start as
 * definitions every user can run, versioned as PUTs are; bad ones stop the worker with one line.
 */
const dir = mkdtempSync(join(tmpdir(), "flowd-moddefs-"));
const bin = join(dir, "flowd");
const prefix = uniquePrefix("md");
const port = testPort();
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
const procs: FlowdProcess[] = [];

const onboard = (greeting: string) => `
export default {
  greet: { data: { type: "object", required: ["who"], properties: { who: { type: "string" } } }, run: (ctx) => ({ said: ctx.data.greeting + " " + ctx.data.who }) },
};
export const definitions = {
  onboard: {
    description: "Greets a customer, then gathers the greeting.",
    input: { type: "object", required: ["customer"], properties: { customer: { type: "object", properties: { name: { type: "string" } } } } },
    flow: { root: { name: "echo", data: { step: "gather" }, children: [{ name: "greet", data: { greeting: "${greeting}", who: { $input: "/customer/name" } } }] } },
  },
  shadowed: { flow: { root: { name: "echo", data: { from: "module" } } } },
};
`;

const writeModule = (name: string, source: string) => {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
};

async function token(user: string) {
  const created = await runFlowd(["token", "create", "--user", user], env, { bin, cwd: dir });
  expect(created.code).toBe(0);
  return httpClient(`http://127.0.0.1:${port}`, created.stdout.trim().split("\n").pop()!);
}

async function startWorker(module: string) {
  const worker = spawnFlowd(["--role=worker"], { ...env, FLOWD_HANDLERS: module }, { bin, cwd: dir });
  procs.push(worker);
  await worker.waitForLine(/"flowd ready"/);
  return worker;
}

const definitionRows = async () => (await db.database.sql<{ n: number }[]>`select count(*)::int as n from definitions`)[0]!.n;

beforeAll(async () => {
  prepareBinary(bin);
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, REDIS_URL, FLOWD_PREFIX: prefix, PORT: String(port), LOG_LEVEL: "info", FLOWD_SHUTDOWN_TIMEOUT_MS: "5000" };
}, 120_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop("SIGKILL")));
  await deletePrefix(prefix);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("flow definitions from handler modules", () => {
  test("a bad definition stops the worker: exit 1, one line naming the file, the definition and the problem; nothing stored", async () => {
    const cases: [string, string, RegExp][] = [
      ["not an object", `export const definitions = [1];`, /the export 'definitions' must be an object mapping definition names/],
      ["bad name", `export const definitions = { "Nightly ETL": { flow: { root: { name: "echo" } } } };`, /definition 'Nightly ETL': .*not a valid definition name/],
      ["no flow", `export const definitions = { nightly: { description: "x" } };`, /definition 'nightly': at \/flow: /],
      ["unknown handler", `export const definitions = { nightly: { flow: { root: { name: "nope" } } } };`, /definition 'nightly': .*Unknown handler 'nope'/],
      [
        "pointer the schema forbids",
        `export const definitions = { nightly: { input: { type: "object", properties: { a: { type: "string" } }, additionalProperties: false }, flow: { root: { name: "echo", data: { b: { $input: "/b" } } } } } };`,
        /definition 'nightly': .*allows nothing at \/b/,
      ],
      ["bad schema", `export const definitions = { nightly: { input: { type: "nope" }, flow: { root: { name: "echo" } } } };`, /definition 'nightly': .*not a valid JSON Schema/],
    ];
    for (const [what, source, message] of cases) {
      const path = writeModule(`bad-${what.replace(/ /g, "-")}.ts`, source);
      const run = await runFlowd(["--role=worker"], { ...env, FLOWD_HANDLERS: path }, { bin, cwd: dir });
      expect({ what, code: run.code }).toEqual({ what, code: 1 });
      const lines = run.stderr.trim().split("\n");
      expect({ what, lines: lines.length }).toEqual({ what, lines: 1 });
      expect(lines[0]).toStartWith(`flowd: handler module ${path}: `);
      expect(lines[0]).toMatch(message);
    }
    const one = writeModule("one.ts", `export const definitions = { twice: { flow: { root: { name: "echo" } } } };`);
    const two = writeModule("two.ts", `export const definitions = { twice: { flow: { root: { name: "echo" } } } };`);
    const run = await runFlowd(["--role=worker"], { ...env, FLOWD_HANDLERS: `${one},${two}` }, { bin, cwd: dir });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(`flowd: handler module ${two}: definition 'twice': the name is already used by ${one}`);
    expect(await definitionRows()).toBe(0);
  }, 120_000);

  test("every user runs a module's definition by name; it is read-only over REST; a changed module makes version 2, an unchanged one none", async () => {
    const alice = await token("alice");
    const bob = await token("bob");
    const api = spawnFlowd(["--role=api"], env, { bin, cwd: dir });
    procs.push(api);
    await api.waitForLine(/"flowd ready"/);
    // Alice's own `shadowed` predates the module's: hers stays hers.
    const own = await alice("PUT", "/v1/definitions/shadowed", { flow: { root: { name: "echo", data: { from: "alice" } } } });
    expect(own.status).toBe(201);

    const module = writeModule("onboard.ts", onboard("hello"));
    let worker = await startWorker(module);
    expect(worker.lines.some((l) => l.includes('"module definitions registered"') && l.includes('"newVersions":["onboard","shadowed"]'))).toBe(true);

    for (const client of [alice, bob]) {
      const listed = await client("GET", "/v1/definitions");
      expect(listed.status).toBe(200);
      const names = Object.fromEntries(listed.body.items.map((d: { name: string; source: string }) => [d.name, d.source]));
      expect(names).toEqual(client === alice ? { onboard: "module", shadowed: "api" } : { onboard: "module", shadowed: "module" });
    }
    expect((await alice("GET", "/v1/definitions/shadowed")).body.latest.flow.root.data).toEqual({ from: "alice" });
    expect((await bob("GET", "/v1/definitions/shadowed")).body.latest.flow.root.data).toEqual({ from: "module" });

    const run = async (client: typeof alice, name: string, version?: number) => {
      const res = await client("POST", "/v1/definitions/onboard/runs", { input: { customer: { name } }, ...(version ? { version } : {}) });
      expect(res.status).toBe(201);
      const done = await client("GET", `/v1/flows/${res.body.id}?wait=20`);
      expect(done.body.status).toBe("completed");
      return done.body;
    };
    const alices = await run(alice, "Ada");
    expect(alices.definition).toEqual({ name: "onboard", version: 1 });
    expect(alices.root.children[0].result).toEqual({ said: "hello Ada" });
    expect((await run(bob, "Bo")).root.children[0].result).toEqual({ said: "hello Bo" });
    // Runs are the runner's: Alice does not see Bob's.
    expect((await alice("GET", "/v1/flows?definition=onboard")).body.items).toHaveLength(1);

    // Read-only over REST: a PUT or DELETE of a module's name is refused, and nothing changes.
    const put = await bob("PUT", "/v1/definitions/onboard", { flow: { root: { name: "echo" } } });
    expect(put.status).toBe(409);
    expect(put.body.error.code).toBe("definition_from_module");
    expect(put.body.error.message).toContain("handler module");
    const del = await bob("DELETE", "/v1/definitions/onboard");
    expect(del.status).toBe(409);
    expect(del.body.error.code).toBe("definition_from_module");
    expect((await bob("GET", "/v1/definitions/onboard")).body.latestVersion).toBe(1);

    // The same module again: no new version. A changed one: version 2, and version 1 still runs as it was.
    await worker.stop("SIGTERM");
    worker = await startWorker(module);
    expect(worker.lines.some((l) => l.includes('"module definitions registered"') && l.includes('"newVersions":[]'))).toBe(true);
    expect((await bob("GET", "/v1/definitions/onboard")).body.latestVersion).toBe(1);
    await worker.stop("SIGTERM");
    writeModule("onboard.ts", onboard("welcome"));
    worker = await startWorker(module);
    const latest = await bob("GET", "/v1/definitions/onboard");
    expect(latest.body.latestVersion).toBe(2);
    expect(latest.body.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect((await run(bob, "Cy")).root.children[0].result).toEqual({ said: "welcome Cy" });
    const v1 = await run(alice, "Di", 1);
    expect(v1.definition).toEqual({ name: "onboard", version: 1 });
    expect(v1.root.children[0].data).toEqual({ greeting: "hello", who: "Di" });
    expect(v1.root.children[0].result).toEqual({ said: "hello Di" });
  }, 120_000);
});
