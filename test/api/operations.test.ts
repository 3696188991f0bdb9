import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/log";
import { startApi } from "../../src/api/start";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

const BULK_MAX = 350;
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 1, tag: "ops", env: { FLOWD_BULK_MAX: String(BULK_MAX) } });
}, 60_000);
afterAll(async () => {
  await stack?.stop();
});

const failing = (name: string) => ({ name, root: { name: "fail", data: { message: `boom ${name}` }, opts: { attempts: 1 } } });
const passing = (name: string) => ({ name, root: { name: "echo", data: { ok: true } } });

async function createFlows(bodies: unknown[]): Promise<string[]> {
  const replies = await Promise.all(bodies.map((b) => stack.http("POST", "/v1/flows", b)));
  for (const r of replies) expect(r.status).toBe(201);
  const ids = replies.map((r) => r.body.id as string);
  await waitFor(
    async () => Number((await stack.database.sql`select count(*)::int as n from flows where id = any(${ids}) and status <> 'running'`)[0]!.n) === ids.length,
    30_000,
    "flows finished",
  );
  return ids;
}

const operationDone = (id: string) =>
  waitFor(async () => {
    const r = await stack.http("GET", `/v1/operations/${id}`);
    return r.body.status !== "running" && r.body;
  }, 30_000, `operation ${id} finished`);

const counts = async () =>
  (await stack.database.sql<{ ops: number; items: number; generations: number }[]>`
    select (select count(*) from operations)::int as ops, (select count(*) from operation_items)::int as items,
           (select coalesce(sum(generation), 0) from flows)::int as generations`)[0]!;

describe("bulk actions on flows", () => {
  test("retry by filter: a dry run counts, then every matched flow is retried exactly once", async () => {
    const failed = await createFlows(Array.from({ length: 25 }, (_, i) => failing(`etl-${i}`)));
    const others = await createFlows([failing("other-1"), passing("etl-ok")]);
    const dry = await stack.http("POST", "/v1/flows/bulk/retry", { status: "failed", name: "etl", dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body.matched).toBe(25);
    expect(dry.body.sample).toHaveLength(20);
    expect(dry.body.sample.every((id: string) => failed.includes(id))).toBe(true);
    // A dry run writes nothing.
    expect((await counts()).ops).toBe(0);

    const res = await stack.http("POST", "/v1/flows/bulk/retry", { status: "failed", name: "etl" });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ kind: "flows.retry", status: "running", matched: 25, filter: { status: "failed", name: "etl" } });
    const op = await operationDone(res.body.id);
    expect(op).toMatchObject({ status: "completed", matched: 25, done: 25, skipped: 0, failed: 0, reasons: [] });
    const generations = await stack.database.sql<{ id: string; generation: number }[]>`select id, generation from flows`;
    for (const g of generations) expect(g.generation).toBe(failed.includes(g.id) ? 1 : 0);
    expect(others).toHaveLength(2);
    const list = await stack.http("GET", "/v1/operations");
    expect(list.body.items.map((o: any) => o.id)).toContain(res.body.id);
  }, 90_000);

  test("ids a single retry would refuse are skipped with the reason", async () => {
    const [ok] = await createFlows([passing("skip-me")]);
    const [bad] = await createFlows([failing("retry-me")]);
    const res = await stack.http("POST", "/v1/flows/bulk/retry", { ids: [ok, bad, "cnotanidatallxxxxxxxxxxxx"] });
    expect(res.status).toBe(202);
    expect(res.body.matched).toBe(2);
    const op = await operationDone(res.body.id);
    expect(op).toMatchObject({ status: "completed", matched: 2, done: 1, skipped: 1, failed: 0 });
    expect(op.reasons).toEqual([{ code: "nothing_to_retry", message: expect.stringContaining("completed"), count: 1, ids: [ok] }]);
  }, 60_000);

  test("delete by time range removes the finished flows created in it", async () => {
    const since = new Date().toISOString();
    const ids = await createFlows([passing("del-1"), passing("del-2")]);
    const res = await stack.http("POST", "/v1/flows/bulk/delete", { since, name: "del-" });
    expect(res.status).toBe(202);
    const op = await operationDone(res.body.id);
    expect(op).toMatchObject({ matched: 2, done: 2 });
    for (const id of ids) expect((await stack.http("GET", `/v1/flows/${id}`)).status).toBe(404);
  }, 60_000);

  test("a filter matching nothing completes at once with zero counts", async () => {
    const res = await stack.http("POST", "/v1/flows/bulk/cancel", { name: "no-such-flow-name" });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: "completed", matched: 0, done: 0 });
  });

  test("an operation whose holder died is taken over and finished", async () => {
    const [id] = await createFlows([failing("orphan")]);
    await stack.database.sql`
      insert into operations (id, user_id, kind, filter, status, matched, lease_owner, lease_until)
      select 'corphanoperation000000000', user_id, 'flows.retry', '{}'::jsonb, 'running', 1, 'dead-process', now() - interval '1 second'
      from flows where id = ${id!}`;
    await stack.database.sql`insert into operation_items (operation_id, item_id) values ('corphanoperation000000000', ${id!})`;
    const op = await operationDone("corphanoperation000000000");
    expect(op).toMatchObject({ status: "completed", done: 1 });
    expect((await stack.database.sql`select generation from flows where id = ${id!}`)[0]!.generation).toBe(1);
  }, 60_000);
});

describe("cancelling an operation", () => {
  test("a running operation stops before its next batch; what was done stays done and the counts match the rows", async () => {
    const ids = await createFlows(Array.from({ length: 300 }, (_, i) => passing(`stop-${i}`)));
    const res = await stack.http("POST", "/v1/flows/bulk/delete", { name: "stop-" });
    expect(res.status).toBe(202);
    const cancel = await stack.http("POST", `/v1/operations/${res.body.id}/cancel`);
    const op = await operationDone(res.body.id);
    if (cancel.status === 409) {
      const remaining = Number((await stack.database.sql`select count(*)::int as n from flows where id = any(${ids})`)[0]!.n);
      // The operation finished before the cancel came: all 300 were deleted, and it says so.
      console.log("the operation finished before its cancel");
      expect(op).toMatchObject({ status: "completed", done: 300 });
      expect(remaining).toBe(0);
      return;
    }
    expect(cancel.status).toBe(200);
    expect(op.status).toBe("cancelled");
    // The batch under way when the cancel came is finished and recorded, then nothing more.
    const left = async () => Number((await stack.database.sql`select count(*)::int as n from flows where id = any(${ids})`)[0]!.n);
    const settled = await waitFor(async () => {
      const a = (await stack.http("GET", `/v1/operations/${res.body.id}`)).body;
      const rows = await left();
      await Bun.sleep(300);
      const b = (await stack.http("GET", `/v1/operations/${res.body.id}`)).body;
      return a.done === b.done && rows === (await left()) && b.done === 300 - rows && b;
    }, 20_000, "the counts to settle");
    expect(settled.skipped + settled.failed).toBe(0);
    expect(settled.done).toBeLessThan(300);
    expect((await stack.database.sql`select count(*)::int as n from operation_items where operation_id = ${res.body.id} and outcome = 'done'`)[0]!.n).toBe(settled.done);
    console.log(`cancelled after ${settled.done} of 300`);
  }, 60_000);
});

describe("bulk actions on single jobs", () => {
  test("delete skips the unfinished ones with job_running, cancel then finishes them", async () => {
    const done = await stack.http("POST", "/v1/jobs", { name: "echo", data: { bulk: "j" } });
    const slow = await stack.http("POST", "/v1/jobs", { name: "sleep", data: { ms: 60_000, bulk: "j" } });
    await waitFor(async () => (await stack.http("GET", `/v1/jobs/${done.body.id}`)).body.status === "completed", 20_000, "echo completed");
    const del = await stack.http("POST", "/v1/jobs/bulk/delete", { data: { bulk: "j" } });
    const op = await operationDone(del.body.id);
    expect(op).toMatchObject({ kind: "jobs.delete", matched: 2, done: 1, skipped: 1 });
    expect(op.reasons[0]).toMatchObject({ code: "job_running", ids: [slow.body.id] });
    const cancel = await stack.http("POST", "/v1/jobs/bulk/cancel", { data: { bulk: "j" } });
    // The echo job was deleted; the sleeping one is the only match left.
    expect(await operationDone(cancel.body.id)).toMatchObject({ kind: "jobs.cancel", matched: 1, done: 1, skipped: 0 });
    expect((await stack.http("GET", `/v1/jobs/${slow.body.id}`)).body.status).toBe("cancelled");
  }, 60_000);
});

describe("operations: bad input is refused and writes nothing", () => {
  test.each([
    ["no filter", "/v1/flows/bulk/retry", {}, "empty_filter", "/"],
    ["only dryRun", "/v1/flows/bulk/retry", { dryRun: true }, "empty_filter", "/"],
    ["an unknown field", "/v1/flows/bulk/cancel", { status: "failed", colour: "red" }, "invalid_input", "/colour"],
    ["a flow status that does not exist", "/v1/flows/bulk/cancel", { status: "stuck" }, "invalid_input", "/status"],
    ["a job status on flows", "/v1/flows/bulk/cancel", { status: "active" }, "invalid_input", "/status"],
    ["since that is not a date-time", "/v1/jobs/bulk/retry", { since: "1h" }, "invalid_input", "/since"],
    ["data that is not an object", "/v1/jobs/bulk/retry", { data: [1] }, "invalid_input", "/data"],
    ["empty ids", "/v1/jobs/bulk/delete", { ids: [] }, "invalid_input", "/ids"],
    ["definition on jobs", "/v1/jobs/bulk/delete", { definition: "x" }, "invalid_input", "/definition"],
  ])("%s", async (_, path, body, code, at) => {
    const before = await counts();
    const res = await stack.http("POST", path, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect(JSON.stringify(res.body.error.details)).toContain(at);
    expect(await counts()).toEqual(before);
  });

  test("more matches than FLOWD_BULK_MAX is 400 bulk_too_large, in a dry run too, and nothing is written", async () => {
    await createFlows(Array.from({ length: BULK_MAX + 1 - 0 }, (_, i) => passing(`many-${i}`)));
    const before = await counts();
    for (const dryRun of [true, false]) {
      const res = await stack.http("POST", "/v1/flows/bulk/delete", { name: "many-", dryRun });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("bulk_too_large");
      expect(res.body.error.message).toContain("FLOWD_BULK_MAX");
    }
    expect(await counts()).toEqual(before);
    const narrowed = await stack.http("POST", "/v1/flows/bulk/delete", { name: "many-1", dryRun: true });
    expect(narrowed.status).toBe(200);
    expect(narrowed.body.matched).toBe(111); // many-1, many-10…19, many-100…199
  }, 60_000);

  test("list routes take since/until as date-times, and refuse anything else naming the parameter", async () => {
    await createFlows([passing("in-range")]);
    const since = new Date(Date.now() - 3_600_000).toISOString();
    const ok = await stack.http("GET", `/v1/flows?since=${encodeURIComponent(since)}&until=${encodeURIComponent(new Date().toISOString())}&limit=1`);
    expect(ok.status).toBe(200);
    expect(ok.body.items).toHaveLength(1);
    const none = await stack.http("GET", `/v1/jobs?until=${encodeURIComponent("2000-01-01T00:00:00Z")}`);
    expect(none.body.items).toEqual([]);
    for (const path of ["/v1/flows?since=1h", "/v1/jobs?until=yesterday"]) {
      const res = await stack.http("GET", path);
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.error.details)).toMatch(/\/(since|until)/);
    }
  });

  test("an unknown operation is 404; cancelling a finished one is 409 operation_finished", async () => {
    expect((await stack.http("GET", "/v1/operations/nope")).status).toBe(404);
    expect((await stack.http("POST", "/v1/operations/cnotanoperationxxxxxxxxxx/cancel")).status).toBe(404);
    const res = await stack.http("POST", "/v1/flows/bulk/cancel", { name: "nothing-at-all" });
    const again = await stack.http("POST", `/v1/operations/${res.body.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("operation_finished");
  });

  test("another user's operation answers 404", async () => {
    const res = await stack.http("POST", "/v1/flows/bulk/cancel", { name: "nothing-at-all" });
    const bob = await stack.newUser("bob");
    expect((await stack.http("GET", `/v1/operations/${res.body.id}`, undefined, { token: bob })).status).toBe(404);
  });
});

describe("an API restart in the middle of an operation", () => {
  // Last in the file: the stack's API is replaced by a new one.
  test("the new API process resumes it: every flow retried exactly once, the counts add up", async () => {
    const ids = await createFlows(Array.from({ length: 300 }, (_, i) => failing(`restart-${i}`)));
    const res = await stack.http("POST", "/v1/flows/bulk/retry", { name: "restart-", status: "failed" });
    expect(res.status).toBe(202);
    // Stopped while it works: the batch under way is finished and recorded, the lease released.
    await waitFor(async () => (await stack.http("GET", `/v1/operations/${res.body.id}`)).body.done > 0, 30_000, "a first batch");
    await stack.api.stop();
    const [mid] = await stack.database.sql<{ status: string; done: number; lease_owner: string | null }[]>`
      select status, done, lease_owner from operations where id = ${res.body.id}`;
    const api = await startApi({ config: loadConfig(stack.env), database: stack.database, log: createLogger("silent") });
    stack.api.stop = api.stop;
    const http = (path: string) => fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${stack.token}` } }).then((r) => r.json() as Promise<any>);
    const op = await waitFor(async () => {
      const o = await http(`/v1/operations/${res.body.id}`);
      return o.status !== "running" && o;
    }, 60_000, "the operation to finish on the new API");
    console.log(`stopped at ${mid!.done}/300 (${mid!.status}, lease ${mid!.lease_owner ?? "released"}); finished on the new API`);
    expect(mid!.lease_owner).toBeNull();
    expect(op).toMatchObject({ status: "completed", matched: 300, done: 300, skipped: 0, failed: 0 });
    const generations = await stack.database.sql<{ generation: number }[]>`select generation from flows where id = any(${ids})`;
    expect(generations.every((g) => g.generation === 1)).toBe(true);
  }, 120_000);
});
