import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";
import { pruneOldEvents, PUBLISHED_RETENTION_MS } from "../../src/services/publish";

/**
 * Triggers and publish: one run per matching trigger with the payload as input, filters by
 * containment, a repeated id (also sent concurrently) starting nothing new, skipped triggers named,
 * and every refusal with nothing written.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ workers: 1, tag: "trig", env: { FLOWD_BODY_LIMIT: "65536" } });
  const put = async (name: string, body: unknown) => expect((await stack.http("PUT", `/v1/definitions/${name}`, body)).status).toBe(201);
  await put("notify", { flow: { root: { name: "echo", data: { order: { $input: "/order" } } } } });
  await put("ship-eu", { flow: { jobs: [{ key: "ship", name: "echo", data: { region: { $input: "/region" } } }] } });
  await put("strict", { input: { type: "object", required: ["amount"], properties: { amount: { type: "number" } } }, flow: { root: { name: "echo" } } });
}, 60_000);
afterAll(async () => await stack?.stop(), 60_000);

type Run = { triggerId: string; definition: string; version: number; flowId: string };
const counts = async () => {
  const [row] = await stack.database.db.execute<{ triggers: number; events: number; flows: number }>(
    sql`select (select count(*) from triggers)::int as triggers, (select count(*) from published_events)::int as events, (select count(*) from flows)::int as flows`,
  );
  return row!;
};
const trigger = async (body: Record<string, unknown>) => {
  const res = await stack.http("POST", "/v1/triggers", body);
  if (res.status !== 201) throw new Error(`trigger: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { id: string };
};
const publish = async (body: Record<string, unknown>) => {
  const res = await stack.http("POST", "/v1/publish", body);
  if (res.status !== 200) throw new Error(`publish: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { eventId: string; id: string; duplicate: boolean; started: Run[]; alreadyStarted: Run[]; skipped: { triggerId: string; code: string; message: string }[] };
};

describe("triggers and publish", () => {
  let all: string;
  let eu: string;
  test("a publish starts exactly the runs whose trigger filter the payload contains", async () => {
    all = (await trigger({ topic: "order.created", definition: "notify" })).id;
    eu = (await trigger({ topic: "order.created", definition: "ship-eu", filter: { region: "eu", order: { express: true } } })).id;
    await trigger({ topic: "order.paid", definition: "notify" });

    const us = await publish({ topic: "order.created", payload: { region: "us", order: { id: 1, express: true } } });
    expect(us.duplicate).toBe(false);
    expect(us.started.map((r) => r.triggerId)).toEqual([all]);

    const euNotExpress = await publish({ topic: "order.created", payload: { region: "eu", order: { id: 2, express: false } } });
    expect(euNotExpress.started.map((r) => r.triggerId)).toEqual([all]);

    const both = await publish({ topic: "order.created", payload: { region: "eu", extra: 1, order: { id: 3, express: true, lines: [1] } } });
    expect(both.started.map((r) => r.triggerId).sort()).toEqual([all, eu].sort());
    expect(both.skipped).toEqual([]);
    const shipped = both.started.find((r) => r.triggerId === eu)!;
    expect(shipped).toMatchObject({ definition: "ship-eu", version: 1 });
    const flow = await stack.http("GET", `/v1/flows/${shipped.flowId}`);
    expect(flow.body.eventId).toBe(both.eventId);
    expect(flow.body.definition).toEqual({ name: "ship-eu", version: 1 });
    expect(flow.body.jobs[0].data).toEqual({ region: "eu" });
    const notify = await stack.http("GET", `/v1/flows/${both.started.find((r) => r.triggerId === all)!.flowId}`);
    expect(notify.body.root.data).toEqual({ order: { id: 3, express: true, lines: [1] } });
    const byEvent = await stack.http("GET", `/v1/flows?eventId=${both.eventId}`);
    expect(byEvent.body.items.length).toBe(2);

    expect((await publish({ topic: "nobody.listens", payload: {} })).started).toEqual([]);
    const published = await stack.http("GET", "/v1/published?topic=order.created&limit=10");
    expect(published.body.items.length).toBe(3);
    expect(published.body.items[0].matched.length).toBe(2);
  });

  test("the same id twice starts nothing new; concurrent publishes of one id start each run once", async () => {
    const first = await publish({ topic: "order.created", id: "evt-1", payload: { region: "eu", order: { express: true } } });
    expect(first.started.length).toBe(2);
    const before = await counts();
    const again = await publish({ topic: "order.created", id: "evt-1", payload: { region: "eu", order: { express: true } } });
    expect(again.duplicate).toBe(true);
    expect(again.started).toEqual([]);
    expect(again.alreadyStarted.map((r) => r.flowId).sort()).toEqual(first.started.map((r) => r.flowId).sort());
    expect(await counts()).toEqual(before);

    const answers = await Promise.all(
      Array.from({ length: 8 }, () => publish({ topic: "order.created", id: "evt-2", payload: { region: "eu", order: { express: true } } })),
    );
    expect(answers.filter((a) => !a.duplicate).length).toBe(1);
    const startedIds = answers.flatMap((a) => a.started.map((r) => r.flowId));
    expect(startedIds.length).toBe(2);
    expect(new Set(answers.flatMap((a) => [...a.started, ...a.alreadyStarted].map((r) => r.flowId))).size).toBe(2);
    const [row] = await stack.database.db.execute<{ n: number }>(sql`select count(*)::int as n from flows where event_id = ${answers[0]!.eventId}`);
    expect(row!.n).toBe(2);
    // The runs do run.
    await waitFor(async () => {
      const res = await stack.http("GET", `/v1/flows?eventId=${answers[0]!.eventId}&status=completed`);
      return res.body.items.length === 2;
    }, 30_000, "the event's runs to complete");
  });

  test("an event past its retention is pruned, and its id may then be published anew", async () => {
    await trigger({ topic: "prune.me", definition: "notify" });
    const first = await publish({ topic: "prune.me", id: "old-1", payload: { order: 1 } });
    expect(first.started.length).toBe(1);
    await stack.database.db.execute(sql`update published_events set created_at = now() - interval '1 hour' - ${`${PUBLISHED_RETENTION_MS} milliseconds`}::interval where event_key = 'old-1'`);
    expect(await pruneOldEvents(stack.database.db)).toBe(1);
    const again = await publish({ topic: "prune.me", id: "old-1", payload: { order: 1 } });
    expect(again.duplicate).toBe(false);
    expect(again.started.length).toBe(1);
    expect(again.started[0]!.flowId).not.toBe(first.started[0]!.flowId);
  });

  test("triggers whose schema refuses the payload, or whose definition was deleted, are skipped and named", async () => {
    const strict = (await trigger({ topic: "pay", definition: "strict" })).id;
    await stack.http("PUT", "/v1/definitions/doomed", { flow: { root: { name: "echo" } } });
    const doomed = (await trigger({ topic: "pay", definition: "doomed" })).id;
    expect((await stack.http("DELETE", "/v1/definitions/doomed")).status).toBe(204);
    const res = await publish({ topic: "pay", payload: { amount: "lots" } });
    expect(res.started).toEqual([]);
    const byId = Object.fromEntries(res.skipped.map((s) => [s.triggerId, s]));
    expect(byId[strict]!.code).toBe("invalid_input");
    expect(byId[strict]!.message).toMatch(/\/input\/amount/);
    expect(byId[doomed]!.code).toBe("not_found");
    const ok = await publish({ topic: "pay", payload: { amount: 3 } });
    expect(ok.started.map((r) => r.triggerId)).toEqual([strict]);
  });

  test("list and delete triggers; a deleted trigger starts nothing", async () => {
    const list = await stack.http("GET", "/v1/triggers?topic=order.created");
    expect(list.body.items.map((t: { id: string }) => t.id).sort()).toEqual([all, eu].sort());
    expect((await stack.http("DELETE", `/v1/triggers/${eu}`)).status).toBe(204);
    expect((await stack.http("DELETE", `/v1/triggers/${eu}`)).status).toBe(404);
    const res = await publish({ topic: "order.created", payload: { region: "eu", order: { express: true } } });
    expect(res.started.map((r) => r.triggerId)).toEqual([all]);
    const bob = await stack.newUser("bob-t");
    expect((await stack.http("GET", "/v1/triggers", undefined, { token: bob })).body.items).toEqual([]);
    expect((await stack.http("DELETE", `/v1/triggers/${all}`, undefined, { token: bob })).status).toBe(404);
    // Bob's publish on the same topic reaches none of alice's triggers.
    const bobs = await stack.http("POST", "/v1/publish", { topic: "order.created", payload: {} }, { token: bob });
    expect(bobs.body.started).toEqual([]);
  });

  test("bad triggers and publishes are refused with nothing written", async () => {
    const before = await counts();
    const refused = async (path: string, body: unknown, status: number, code?: string, at?: string) => {
      const res = await stack.http("POST", path, body);
      if (res.status !== status) throw new Error(`${JSON.stringify(body).slice(0, 200)}: expected ${status}, got ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
      if (code) expect(res.body.error.code).toBe(code);
      if (at) expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(at);
    };
    await refused("/v1/triggers", { topic: "t", definition: "no-such" }, 404, "not_found");
    await refused("/v1/triggers", { topic: "t", definition: "notify", version: 7 }, 404, "not_found");
    await refused("/v1/triggers", { topic: "t", definition: "doomed" }, 404, "not_found");
    await refused("/v1/triggers", { topic: "Bad Topic", definition: "notify" }, 400, "invalid_name", "/topic");
    await refused("/v1/triggers", { topic: "t", definition: "notify", filter: [1] }, 400);
    await refused("/v1/triggers", { topic: "t", definition: "notify", filter: "x" }, 400);
    await refused("/v1/publish", { topic: "-nope", payload: {} }, 400, "invalid_name", "/topic");
    await refused("/v1/publish", { payload: {} }, 400);
    await refused("/v1/publish", { topic: "order.created", payload: { big: "x".repeat(70_000) } }, 413, "payload_too_large");
    expect(await counts()).toEqual(before);
  });
});
