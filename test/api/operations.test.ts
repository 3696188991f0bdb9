import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

const BULK_MAX = 40;
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
    expect(narrowed.body.matched).toBe(11);
  }, 60_000);

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
