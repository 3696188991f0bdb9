import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

/**
 * Definitions through the API in this process and one worker process: versions, runs with `$input`
 * references, a running v1 untouched by v2, Idempotency-Key, delete, and every refusal with nothing written.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 1, tag: "defs" });
}, 60_000);
afterAll(async () => await stack?.stop(), 60_000);

const counts = async () => {
  const [row] = await stack.database.db.execute<{ defs: number; versions: number; flows: number }>(
    sql`select (select count(*) from definitions)::int as defs, (select count(*) from definition_versions)::int as versions, (select count(*) from flows)::int as flows`,
  );
  return row!;
};

const SCHEMA = {
  type: "object",
  required: ["customer"],
  properties: { customer: { type: "object", required: ["id"], properties: { id: { type: "integer" }, tags: { type: "array" } } }, ms: { type: "integer" } },
  additionalProperties: false,
};
const onboard = (extra: Record<string, unknown> = {}) => ({
  description: "onboard a customer",
  input: SCHEMA,
  flow: {
    root: {
      name: "echo",
      data: { customerId: { $input: "/customer/id" }, whole: { $input: "" }, list: [{ $input: "/customer/id" }, "x"], text: "id ${/customer/id}", ...extra },
      children: [{ name: "sleep", data: { ms: { $input: "/ms" } } }],
    },
  },
});

async function refused(res: { status: number; body: any }, status: number, code: string, path?: RegExp) {
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  expect(res.body.error.code).toBe(code);
  if (path) expect((res.body.error.details as { path: string }[]).map((d) => d.path).join(" ")).toMatch(path);
  return res.body.error;
}

async function finished(id: string) {
  return waitFor(async () => {
    const res = await stack.http("GET", `/v1/flows/${id}?wait=5`);
    return res.body.status !== "running" ? res.body : null;
  }, 60_000, `flow ${id} to finish`);
}

describe("definitions", () => {
  test("PUT stores versions 1, 2; an identical body stores nothing; GET reads them", async () => {
    const first = await stack.http("PUT", "/v1/definitions/onboard", onboard());
    expect(first.status).toBe(201);
    expect(first.body.latestVersion).toBe(1);
    // The same body, keys in another order: no new version.
    const body = onboard();
    const again = await stack.http("PUT", "/v1/definitions/onboard", { flow: body.flow, input: body.input, description: body.description });
    expect(again.status).toBe(200);
    expect(again.body.latestVersion).toBe(1);
    const second = await stack.http("PUT", "/v1/definitions/onboard", onboard({ v: 2 }));
    expect(second.status).toBe(201);
    expect(second.body.latestVersion).toBe(2);
    expect(second.body.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect(second.body.latest.flow.root.data.v).toBe(2);
    const v1 = await stack.http("GET", "/v1/definitions/onboard/versions/1");
    expect(v1.status).toBe(200);
    expect(v1.body.flow.root.data.v).toBeUndefined();
    expect(v1.body.input).toEqual(SCHEMA);
    const list = await stack.http("GET", "/v1/definitions?limit=10");
    expect(list.body.items.map((d: { name: string }) => d.name)).toContain("onboard");
    // Another user sees none of it.
    const bob = await stack.newUser("bob");
    expect((await stack.http("GET", "/v1/definitions/onboard", undefined, { token: bob })).status).toBe(404);
    expect((await stack.http("GET", "/v1/definitions", undefined, { token: bob })).body.items).toEqual([]);
  });

  test("a run resolves $input references into job data and records the definition and version", async () => {
    const input = { customer: { id: 42, tags: ["a"] }, ms: 1 };
    const res = await stack.http("POST", "/v1/definitions/onboard/runs", { input, version: 1 });
    expect(res.status).toBe(201);
    expect(res.body.definition).toEqual({ name: "onboard", version: 1 });
    expect(res.body.name).toBe("onboard");
    const data = res.body.root.data;
    expect(data.customerId).toBe(42);
    expect(data.whole).toEqual(input);
    expect(data.list).toEqual([42, "x"]);
    expect(data.text).toBe("id ${/customer/id}");
    expect(res.body.root.children[0].data).toEqual({ ms: 1 });
    const done = await finished(res.body.id);
    expect(done.status).toBe("completed");
    expect(done.root.result.data.customerId).toBe(42);
    const latest = await stack.http("POST", "/v1/definitions/onboard/runs", { input });
    expect(latest.body.definition).toEqual({ name: "onboard", version: 2 });
    const filtered = await stack.http("GET", "/v1/flows?definition=onboard&limit=50");
    expect(filtered.body.items.length).toBe(2);
    expect(filtered.body.items.every((f: { definition: { name: string } }) => f.definition.name === "onboard")).toBe(true);
    expect((await stack.http("GET", "/v1/flows?definition=nothing")).body.items).toEqual([]);
  });

  test("a run of version 1 started before version 2 is stored keeps version 1's jobs", async () => {
    const flow = (ms: number, tag: string) => ({ flow: { jobs: [{ key: "wait", name: "sleep", data: { ms } }, { key: "after", name: "echo", data: { tag }, dependsOn: ["wait"] }] } });
    expect((await stack.http("PUT", "/v1/definitions/slow", flow(1500, "one"))).status).toBe(201);
    const run = await stack.http("POST", "/v1/definitions/slow/runs", {});
    expect(run.status).toBe(201);
    expect((await stack.http("PUT", "/v1/definitions/slow", flow(1, "two"))).status).toBe(201);
    const done = await finished(run.body.id);
    expect(done.status).toBe("completed");
    expect(done.definition).toEqual({ name: "slow", version: 1 });
    expect(done.jobs.find((j: { key: string }) => j.key === "after").data).toEqual({ tag: "one" });
    expect(done.jobs.find((j: { key: string }) => j.key === "wait").data).toEqual({ ms: 1500 });
    const next = await stack.http("POST", "/v1/definitions/slow/runs", {});
    expect(next.body.definition.version).toBe(2);
    expect(next.body.jobs.find((j: { key: string }) => j.key === "after").data).toEqual({ tag: "two" });
  });

  test("Idempotency-Key: a repeat starts nothing and answers the first flow; another input is 409", async () => {
    const input = { customer: { id: 7 }, ms: 1 };
    const headers = { "idempotency-key": "k-1" };
    const a = await stack.http("POST", "/v1/definitions/onboard/runs", { input }, { headers });
    const before = await counts();
    const b = await stack.http("POST", "/v1/definitions/onboard/runs", { input }, { headers });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    expect(b.body.id).toBe(a.body.id);
    await refused(await stack.http("POST", "/v1/definitions/onboard/runs", { input: { customer: { id: 8 } } }, { headers }), 409, "idempotency_key_reused");
    expect(await counts()).toEqual(before);
  });

  test("bad definitions are refused naming the problem, and nothing is written", async () => {
    const before = await counts();
    const put = (name: string, body: unknown) => stack.http("PUT", `/v1/definitions/${name}`, body);
    const e1 = await refused(await put("bad", { flow: { root: { name: "echo", children: [{ name: "nope" }] } } }), 400, "unknown_handler", /^\/flow\/root\/children\/0\/name$/);
    expect(e1.message).toMatch(/\/root\/children\/0/);
    await refused(await put("bad", { flow: { root: { name: "sleep", data: { ms: "soon" } } } }), 400, "invalid_job_data", /^\/flow\/root\/data\/ms$/);
    await refused(await put("bad", { flow: { jobs: [{ key: "a", name: "echo", dependsOn: ["b"] }] } }), 400, "invalid_dependency", /^\/flow\/jobs\/0\/dependsOn\/0$/);
    await refused(await put("bad", { flow: {} }), 400, "invalid_input", /^\/flow\/root$/);
    await refused(await put("bad", { input: { type: "no-such-type" }, flow: { root: { name: "echo" } } }), 400, "invalid_input_schema", /^\/input$/);
    await refused(await put("bad", { input: 5, flow: { root: { name: "echo" } } }), 400, "invalid_input_schema", /^\/input$/);
    await refused(await put("bad", { flow: { root: { name: "echo", data: { a: { $input: "no-slash" } } } } }), 400, "invalid_input", /^\/flow\/root\/data\/a\/\$input$/);
    // A pointer into a property the schema does not allow.
    await refused(await put("bad", { input: SCHEMA, flow: { root: { name: "echo", data: { a: { $input: "/nope/x" } } } } }), 400, "invalid_input", /^\/flow\/root\/data\/a\/\$input$/);
    await refused(await put("Bad-Name", { flow: { root: { name: "echo" } } }), 400, "invalid_name", /^\/name$/);
    await refused(await put("x".repeat(129), { flow: { root: { name: "echo" } } }), 400, "invalid_name");
    expect((await put("bad", { flow: { root: { name: "echo" } }, extra: 1 })).status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  test("bad runs are refused naming the path, and nothing is written", async () => {
    const before = await counts();
    const run = (name: string, body: unknown) => stack.http("POST", `/v1/definitions/${name}/runs`, body);
    const e1 = await refused(await run("onboard", { input: { customer: { id: "x" } } }), 400, "invalid_input", /^\/input\/customer\/id$/);
    expect(e1.message).toMatch(/\/input\/customer\/id/);
    await refused(await run("onboard", { input: {} }), 400, "invalid_input", /^\/input\/customer$/);
    await refused(await run("onboard", { input: { customer: { id: 1 }, other: 1 } }), 400, "invalid_input", /^\/input$/);
    // Allowed by the schema but absent: the reference has nothing to take.
    const e2 = await refused(await run("onboard", { input: { customer: { id: 1 } } }), 400, "invalid_input", /^\/input\/ms$/);
    expect(e2.message).toMatch(/nothing at \/ms.*\/flow\/root\/children\/0\/data\/ms/);
    await refused(await run("nothing-here", { input: {} }), 404, "not_found");
    const e3 = await refused(await run("onboard", { version: 9 }), 404, "not_found");
    expect(e3.message).toMatch(/no version 9/);
    await refused(await stack.http("GET", "/v1/definitions/onboard/versions/9"), 404, "not_found");
    await refused(await stack.http("GET", "/v1/definitions/onboard/versions/abc"), 400, "invalid_input");
    expect(await counts()).toEqual(before);
  });

  test("DELETE: no new runs, runs in flight go on; a PUT again numbers on", async () => {
    expect((await stack.http("PUT", "/v1/definitions/gone", { flow: { root: { name: "sleep", data: { ms: 800 } } } })).status).toBe(201);
    const running = await stack.http("POST", "/v1/definitions/gone/runs", {});
    expect(running.status).toBe(201);
    expect((await stack.http("DELETE", "/v1/definitions/gone")).status).toBe(204);
    await refused(await stack.http("DELETE", "/v1/definitions/gone"), 404, "not_found");
    await refused(await stack.http("POST", "/v1/definitions/gone/runs", {}), 404, "not_found");
    await refused(await stack.http("GET", "/v1/definitions/gone"), 404, "not_found");
    expect((await finished(running.body.id)).status).toBe("completed");
    const back = await stack.http("PUT", "/v1/definitions/gone", { flow: { root: { name: "echo" } } });
    expect(back.status).toBe(201);
    expect(back.body.latestVersion).toBe(2);
  });
});
