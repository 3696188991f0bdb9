import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

/**
 * Definitions end to end, the API and a worker as separate processes (the compiled binary under
 * FLOWD_BIN): a run by name with its input filled into the jobs, a running version 1 untouched by
 * version 2, a schedule every second running a definition, publishes fanning out to triggers, and
 * bad input refused with nothing stored.
 */
let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ tag: "defs-e2e" });
}, 120_000);
afterAll(async () => await c?.stop(), 60_000);

const http = () => c.apis[0]!.http;
const counts = async () => {
  const [row] = await c.database.sql<{ defs: number; versions: number; flows: number; schedules: number; triggers: number }[]>`
    select (select count(*) from definitions)::int as defs, (select count(*) from definition_versions)::int as versions,
           (select count(*) from flows)::int as flows, (select count(*) from schedules)::int as schedules, (select count(*) from triggers)::int as triggers`;
  return row!;
};
async function finished(id: string) {
  return waitFor(async () => {
    const res = await http()("GET", `/v1/flows/${id}?wait=5`);
    return res.status === 200 && res.body.status !== "running" ? res.body : null;
  }, 60_000, `flow ${id} to finish`);
}

const v1 = {
  description: "charge then notify",
  input: { type: "object", required: ["customer"], properties: { customer: { type: "object", required: ["id"], properties: { id: { type: "integer" } } } } },
  flow: {
    jobs: [
      { key: "hold", name: "sleep", data: { ms: 1500 } },
      { key: "charge", name: "echo", data: { customer: { $input: "/customer/id" }, step: "v1" }, dependsOn: ["hold"] },
    ],
  },
};
const v2 = { ...v1, flow: { jobs: [{ key: "charge", name: "echo", data: { customer: { $input: "/customer/id" }, step: "v2" } }] } };

describe("definitions with the binary", () => {
  test("a run by name fills its input into the jobs; version 2 leaves a running version 1 alone, new runs use 2", async () => {
    expect((await http()("PUT", "/v1/definitions/charge", v1)).status).toBe(201);
    const run1 = await http()("POST", "/v1/definitions/charge/runs", { input: { customer: { id: 42 } } });
    expect(run1.status).toBe(201);
    expect(run1.body.definition).toEqual({ name: "charge", version: 1 });
    const put2 = await http()("PUT", "/v1/definitions/charge", v2);
    expect(put2.status).toBe(201);
    expect(put2.body.latestVersion).toBe(2);
    const run2 = await http()("POST", "/v1/definitions/charge/runs", { input: { customer: { id: 43 } } });
    expect(run2.body.definition).toEqual({ name: "charge", version: 2 });
    const done1 = await finished(run1.body.id);
    expect(done1.status).toBe("completed");
    expect(done1.jobs.map((j: { key: string }) => j.key)).toEqual(["hold", "charge"]);
    const charge1 = done1.jobs.find((j: { key: string }) => j.key === "charge");
    expect(charge1.data).toEqual({ customer: 42, step: "v1" });
    expect(charge1.result.data).toEqual({ customer: 42, step: "v1" });
    const done2 = await finished(run2.body.id);
    expect(done2.jobs.map((j: { data: unknown }) => j.data)).toEqual([{ customer: 43, step: "v2" }]);
    const listed = await http()("GET", "/v1/flows?definition=charge");
    expect(listed.body.items.map((f: { definition: { version: number } }) => f.definition.version).sort()).toEqual([1, 2]);
  }, 90_000);

  test("a schedule every second runs the definition; its flows are linked to it", async () => {
    const res = await http()("POST", "/v1/schedules", { name: "charge-often", every: 1000, run: { definition: "charge", input: { customer: { id: 7 } } } });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const flows = await waitFor(async () => {
      const page = await http()("GET", `/v1/flows?scheduleId=${id}&status=completed`);
      return page.body.items.length >= 2 ? page.body.items : null;
    }, 30_000, "two completed firings");
    for (const f of flows) {
      expect(f.scheduleId).toBe(id);
      expect(f.definition).toEqual({ name: "charge", version: 2 });
    }
    expect((await http()("DELETE", `/v1/schedules/${id}`)).status).toBe(204);
  }, 60_000);

  test("a publish starts both matching triggers, a filtered one only on a match, a republished id nothing", async () => {
    expect((await http()("PUT", "/v1/definitions/audit", { flow: { root: { name: "echo", data: { event: { $input: "" } } } } })).status).toBe(201);
    const t1 = (await http()("POST", "/v1/triggers", { topic: "customer.signed-up", definition: "charge" })).body.id;
    const t2 = (await http()("POST", "/v1/triggers", { topic: "customer.signed-up", definition: "audit" })).body.id;
    const t3 = (await http()("POST", "/v1/triggers", { topic: "customer.signed-up", definition: "audit", filter: { plan: "pro" } })).body.id;
    const free = await http()("POST", "/v1/publish", { topic: "customer.signed-up", id: "signup-1", payload: { customer: { id: 1 }, plan: "free" } });
    expect(free.status).toBe(200);
    expect(free.body.started.map((r: { triggerId: string }) => r.triggerId).sort()).toEqual([t1, t2].sort());
    const before = await counts();
    const again = await http()("POST", "/v1/publish", { topic: "customer.signed-up", id: "signup-1", payload: { customer: { id: 1 }, plan: "free" } });
    expect(again.body.duplicate).toBe(true);
    expect(again.body.started).toEqual([]);
    expect(await counts()).toEqual(before);
    const pro = await http()("POST", "/v1/publish", { topic: "customer.signed-up", id: "signup-2", payload: { customer: { id: 2 }, plan: "pro" } });
    expect(pro.body.started.map((r: { triggerId: string }) => r.triggerId).sort()).toEqual([t1, t2, t3].sort());
    for (const r of pro.body.started as { flowId: string }[]) expect((await finished(r.flowId)).status).toBe("completed");
  }, 90_000);

  test("bad input is refused and nothing is stored", async () => {
    const before = await counts();
    const expectStatus = async (p: Promise<{ status: number; body: any }>, status: number, code: string, path?: string) => {
      const res = await p;
      if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
      expect(res.body.error.code).toBe(code);
      if (path) expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    };
    await expectStatus(http()("PUT", "/v1/definitions/broken", { flow: { root: { name: "echo", children: [{ name: "no-such-handler" }] } } }), 400, "unknown_handler", "/flow/root/children/0/name");
    await expectStatus(http()("PUT", "/v1/definitions/broken", { input: { type: 12 }, flow: { root: { name: "echo" } } }), 400, "invalid_input_schema", "/input");
    await expectStatus(http()("PUT", "/v1/definitions/UPPER", { flow: { root: { name: "echo" } } }), 400, "invalid_name", "/name");
    await expectStatus(http()("POST", "/v1/definitions/charge/runs", { input: { customer: { id: "x" } } }), 400, "invalid_input", "/input/customer/id");
    await expectStatus(http()("POST", "/v1/definitions/charge/runs", { input: {}, version: 3 }), 404, "not_found");
    await expectStatus(http()("POST", "/v1/definitions/missing/runs", { input: {} }), 404, "not_found");
    await expectStatus(http()("POST", "/v1/schedules", { name: "s", every: 1000, run: { definition: "missing" } }), 404, "not_found");
    await expectStatus(http()("POST", "/v1/triggers", { topic: "t", definition: "missing" }), 404, "not_found");
    await expectStatus(http()("POST", "/v1/triggers", { topic: "Not.Valid", definition: "charge" }), 400, "invalid_name", "/topic");
    await expectStatus(http()("POST", "/v1/publish", { topic: "t", payload: { blob: "x".repeat(1_100_000) } }), 413, "payload_too_large");
    expect(await counts()).toEqual(before);
  }, 60_000);
});
