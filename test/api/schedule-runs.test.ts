import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";

/**
 * Schedules whose firings run a definition, through real processes (an API, a worker): each firing
 * is a flow linked to the schedule and the definition; missed firings run only with catchUp.
 */
let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ apis: 1, workers: 1, tag: "schedrun" });
  const http = c.apis[0]!.http;
  const put = await http("PUT", "/v1/definitions/nightly-etl", {
    input: { type: "object", required: ["region"], properties: { region: { type: "string" } } },
    flow: { root: { name: "echo", data: { region: { $input: "/region" } } } },
  });
  expect(put.status).toBe(201);
}, 60_000);
afterAll(async () => await c?.stop(), 60_000);

const http = () => c.apis[0]!.http;
const flowsOf = async (scheduleId: string) => {
  const res = await http()("GET", `/v1/flows?scheduleId=${scheduleId}&limit=100`);
  expect(res.status).toBe(200);
  return res.body.items as { id: string; status: string; definition?: { name: string; version: number }; scheduleId?: string }[];
};
const count = async (table: "schedules" | "flows") => {
  const [row] = await c.database.sql<{ n: number }[]>`select count(*)::int as n from ${c.database.sql(table)}`;
  return row!.n;
};

describe("schedules that run a definition", () => {
  test("every 1000 ms: each firing is a flow of the definition, linked to the schedule, with the input filled in", async () => {
    const res = await http()("POST", "/v1/schedules", { name: "etl", every: 1000, run: { definition: "nightly-etl", input: { region: "eu" } } });
    expect(res.status).toBe(201);
    expect(res.body.run).toEqual({ definition: "nightly-etl", version: null, input: { region: "eu" } });
    expect(res.body.job).toBeUndefined();
    expect(res.body.catchUp).toBe(false);
    const id = res.body.id as string;
    const flows = await waitFor(async () => {
      const items = await flowsOf(id);
      return items.filter((f) => f.status === "completed").length >= 2 ? items : null;
    }, 30_000, "two completed firings");
    for (const f of flows) {
      expect(f.definition).toEqual({ name: "nightly-etl", version: 1 });
      expect(f.scheduleId).toBe(id);
    }
    const one = await http()("GET", `/v1/flows/${flows[0]!.id}`);
    expect(one.body.root.data).toEqual({ region: "eu" });
    const byDefinition = await http()("GET", "/v1/flows?definition=nightly-etl&limit=100");
    expect(byDefinition.body.items.length).toBeGreaterThanOrEqual(2);
    expect((await http()("DELETE", `/v1/schedules/${id}`)).status).toBe(204);
  });

  test("bad runs are refused with nothing written", async () => {
    const before = { schedules: await count("schedules"), flows: await count("flows") };
    const post = (body: Record<string, unknown>) => http()("POST", "/v1/schedules", { name: "x", every: 1000, ...body });
    const expectRefused = async (body: Record<string, unknown>, status: number, code: string, path?: string) => {
      const res = await post(body);
      if (res.status !== status) throw new Error(`${JSON.stringify(body)}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
      expect(res.body.error.code).toBe(code);
      if (path) expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    };
    await expectRefused({ run: { definition: "no-such" } }, 404, "not_found");
    await expectRefused({ run: { definition: "nightly-etl", version: 5, input: { region: "eu" } } }, 404, "not_found");
    await expectRefused({ run: { definition: "nightly-etl", input: { region: 5 } } }, 400, "invalid_input", "/run/input/region");
    await expectRefused({ run: { definition: "nightly-etl", input: {} } }, 400, "invalid_input", "/run/input/region");
    await expectRefused({ run: { definition: "Not A Name" } }, 400, "invalid_name", "/run/definition");
    await expectRefused({ run: { definition: "nightly-etl", input: { region: "eu" } }, job: { name: "echo" } }, 400, "invalid_input");
    await expectRefused({}, 400, "invalid_input");
    expect({ schedules: await count("schedules"), flows: await count("flows") }).toEqual(before);
  });

  test("after its definition is deleted, a schedule's firings start nothing and say why; the schedule stays", async () => {
    expect((await http()("PUT", "/v1/definitions/short-lived", { flow: { root: { name: "echo" } } })).status).toBe(201);
    const res = await http()("POST", "/v1/schedules", { name: "doomed", every: 1000, run: { definition: "short-lived" } });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    await waitFor(async () => (await flowsOf(id)).length >= 1, 20_000, "a first firing");
    expect((await http()("DELETE", "/v1/definitions/short-lived")).status).toBe(204);
    await c.workers[0]!.waitForLine(/a schedule's firing started no run.*short-lived|short-lived.*a schedule's firing started no run/, 20_000);
    const settled = (await flowsOf(id)).length;
    await c.workers[0]!.waitForLine(new RegExp(`"scheduleId":"${id}"`), 5_000);
    await Bun.sleep(2_500); // two more firings are due in this time; neither may start a flow
    expect((await flowsOf(id)).length).toBe(settled);
    expect((await http()("GET", `/v1/schedules/${id}`)).status).toBe(200);
    expect((await http()("DELETE", `/v1/schedules/${id}`)).status).toBe(204);
  }, 60_000);

  test("firings missed while no worker ran: one late firing by default, the missed ones too with catchUp", async () => {
    const make = async (catchUp: boolean) => {
      const res = await http()("POST", "/v1/schedules", { name: `c-${catchUp}`, every: 1000, catchUp, run: { definition: "nightly-etl", input: { region: "us" } } });
      expect(res.status).toBe(201);
      return res.body.id as string;
    };
    const plain = await make(false);
    const caught = await make(true);
    await waitFor(async () => (await flowsOf(plain)).length >= 1 && (await flowsOf(caught)).length >= 1, 20_000, "first firings");
    await c.workers[0]!.stop("SIGTERM");
    c.workers.length = 0;
    const before = { plain: (await flowsOf(plain)).length, caught: (await flowsOf(caught)).length };
    await Bun.sleep(6_000); // the outage: six firings of each are due and nothing runs them
    await c.startWorker();
    const caughtAfter = await waitFor(async () => {
      const n = (await flowsOf(caught)).length;
      return n - before.caught >= 6 ? n : null;
    }, 20_000, "the caught-up firings");
    const plainAfter = (await flowsOf(plain)).length;
    // Both schedules then fire on each second; only the catch-up one ran the missed five or so.
    expect(caughtAfter - before.caught).toBeGreaterThanOrEqual(plainAfter - before.plain + 3);
    for (const id of [plain, caught]) expect((await http()("DELETE", `/v1/schedules/${id}`)).status).toBe(204);
  }, 90_000);
});
