import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// Real API and worker processes delivering to a local receiver (private URLs allowed there), and an
// API with the default setting for the registration refusals.
interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}
const received: Received[] = [];
const flaky = new Map<string, number>();
const receiver = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    const path = new URL(req.url).pathname;
    received.push({ path, headers: Object.fromEntries(req.headers), body: await req.text() });
    if (path === "/gone") return new Response("gone", { status: 410 });
    if (path === "/down") return new Response("down", { status: 503 });
    if (path === "/huge") {
      // 100 MB, streamed: the delivery must stop reading long before that.
      const chunk = new Uint8Array(1024 * 1024);
      let sent = 0;
      return new Response(new ReadableStream({ pull(c) { if (sent++ >= 100) c.close(); else c.enqueue(chunk); } }));
    }
    if (path === "/redirect") return new Response(null, { status: 302, headers: { location: "/target" } });
    if (path === "/flaky") {
      const n = (flaky.get(path) ?? 0) + 1;
      flaky.set(path, n);
      if (n === 1) return new Response("try again", { status: 500 });
    }
    return new Response("ok");
  },
});
const at = (path: string) => `http://127.0.0.1:${receiver.port}${path}`;
const hitsOf = (path: string) => received.filter((r) => r.path === path);

let cluster: Cluster;
let strict: Stack;
beforeAll(async () => {
  cluster = await startCluster({
    apis: 1,
    workers: 1,
    tag: "hooks",
    env: { FLOWD_WEBHOOK_RETRY_SCHEDULE: "100ms,200ms", FLOWD_WEBHOOK_DISABLE_AFTER_MS: "5000" },
  });
  strict = await startStack({ workers: 0, tag: "hooksstrict", env: { FLOWD_ALLOW_PRIVATE_URLS: "false" } });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  await strict?.stop();
  receiver.stop(true);
});

const register = async (path: string, events = ["flow.completed"]) => {
  const res = await cluster.apis[0]!.http("POST", "/v1/webhooks", { url: at(path), events });
  expect(res.status).toBe(201);
  return res.body as { id: string; secret: string };
};
const runFlow = async () => {
  const res = await cluster.apis[0]!.http("POST", "/v1/flows", { name: "hooked", root: { name: "echo", data: { v: 1 } } });
  const done = await cluster.apis[0]!.http("GET", `/v1/flows/${res.body.id}?wait=20`);
  expect(done.body.status).toBe("completed");
  return done.body;
};
const deliveries = async (id: string) => (await cluster.apis[0]!.http("GET", `/v1/webhooks/${id}/deliveries`)).body.items as any[];

describe("webhooks", () => {
  test("with no webhook the dispatcher only looks while its cursor follows the log; the first one registered gets what happens after, none of before", async () => {
    const api = cluster.apis[0]!;
    const flowDone = async () => {
      const res = await api.http("POST", "/v1/flows", { name: "before hooks", root: { name: "echo" } });
      expect(res.status).toBe(201);
      await api.http("GET", `/v1/flows/${res.body.id}?wait=30`);
      return res.body.id as string;
    };
    const before = await flowDone();
    const cursorAtEnd = async () => {
      const [row] = await cluster.database.sql<{ at_end: boolean }[]>`
        select (select seq from dispatch_cursors where name = 'webhooks') >= (select max(seq) from events) as at_end`;
      return row?.at_end;
    };
    await waitFor(cursorAtEnd, 15_000, "the dispatch cursor to reach the end of the log with no webhook");
    await register("/first");
    const after = await flowDone();
    await waitFor(() => hitsOf("/first").length >= 1, 10_000, "the delivery of the flow completed after registering");
    const flowIds = hitsOf("/first").map((r) => JSON.parse(r.body).data.flowId);
    expect(flowIds).toContain(after);
    expect(flowIds).not.toContain(before);
  });

  test("flow.completed is delivered with a signature an independent verifier accepts; the secret is shown once", async () => {
    const hook = await register("/ok");
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{40,}={0,2}$/);
    const listed = await cluster.apis[0]!.http("GET", "/v1/webhooks");
    expect(JSON.stringify(listed.body)).not.toContain(hook.secret);
    const flow = await runFlow();

    const hit = await waitFor(() => hitsOf("/ok").find((r) => JSON.parse(r.body).data.flowId === flow.id), 15_000, "a delivery");
    const id = hit.headers["webhook-id"]!;
    const timestamp = hit.headers["webhook-timestamp"]!;
    const key = Buffer.from(hook.secret.slice("whsec_".length), "base64");
    const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${hit.body}`).digest("base64");
    expect(hit.headers["webhook-signature"]).toBe(`v1,${expected}`);
    expect(Math.abs(Date.now() / 1000 - Number(timestamp))).toBeLessThan(60);
    const body = JSON.parse(hit.body);
    expect(body.type).toBe("flow.completed");
    expect(typeof body.seq).toBe("number");
    expect(body.data.result).toEqual(flow.root.result);
    await waitFor(async () => (await deliveries(hook.id)).length === 1, 5_000, "the attempt on record");
    expect((await deliveries(hook.id))[0]).toMatchObject({ attempt: 1, statusCode: 200, error: null, eventSeq: body.seq });
  });

  test("a 500 then a 200: two attempts on record with the same webhook-id", async () => {
    const hook = await register("/flaky");
    await runFlow();
    await waitFor(() => hitsOf("/flaky").length >= 2, 15_000, "the retry");
    const [first, second] = hitsOf("/flaky");
    expect(first!.headers["webhook-id"]).toBe(second!.headers["webhook-id"]!);
    await waitFor(async () => (await deliveries(hook.id)).length === 2, 5_000, "two attempts on record");
    const attempts = (await deliveries(hook.id)).reverse();
    expect(attempts.map((a) => [a.attempt, a.statusCode])).toEqual([[1, 500], [2, 200]]);
  });

  test("410 Gone disables the endpoint; a redirect is never followed", async () => {
    const gone = await register("/gone");
    const redirect = await register("/redirect");
    await runFlow();
    await waitFor(async () => {
      const list = (await cluster.apis[0]!.http("GET", "/v1/webhooks?limit=100")).body.items as any[];
      return list.find((w) => w.id === gone.id)?.disabled;
    }, 15_000, "the endpoint disabled");
    const list = (await cluster.apis[0]!.http("GET", "/v1/webhooks?limit=100")).body.items as any[];
    expect(list.find((w) => w.id === gone.id).disabledReason).toContain("410");
    await waitFor(async () => (await deliveries(redirect.id)).length === 3, 15_000, "three attempts at the redirect");
    expect((await deliveries(redirect.id)).every((a) => a.statusCode === 302)).toBe(true);
    expect(hitsOf("/target")).toHaveLength(0);
    // A disabled endpoint gets nothing more.
    const before = hitsOf("/gone").length;
    await runFlow();
    await waitFor(async () => (await deliveries(redirect.id)).length === 6, 15_000, "the next event's attempts");
    expect(hitsOf("/gone").length).toBe(before);
  });

  test("a receiver streaming 100 MB is cut off and the attempt recorded as failed", async () => {
    const hook = await register("/huge");
    await runFlow();
    await waitFor(async () => (await deliveries(hook.id)).length === 3, 20_000, "three capped attempts");
    for (const a of await deliveries(hook.id)) expect(a.error).toContain("exceeded 65536 bytes");
  });

  test("an event enqueued again after a crash before the cursor moved is not delivered twice", async () => {
    const hook = await register("/once");
    const flow = await runFlow();
    await waitFor(() => hitsOf("/once").some((r) => JSON.parse(r.body).data.flowId === flow.id), 15_000, "the delivery");
    const sql = cluster.database.sql;
    const [{ seq } = { seq: "0" }] = await sql<{ seq: string }[]>`select min(seq)::text as seq from events where flow_id = ${flow.id}`;
    const delivered = hitsOf("/once").length;
    // The state a dispatcher leaves when it dies after enqueueing and before committing the cursor.
    await sql`update dispatch_cursors set seq = ${Number(seq) - 1} where name = 'webhooks'`;
    await waitFor(async () => {
      const [row] = await sql<{ behind: boolean }[]>`select (select seq from dispatch_cursors where name = 'webhooks') >= (select max(seq) from events) as behind`;
      return row?.behind;
    }, 10_000, "the dispatcher to pass the events again");
    expect(hitsOf("/once").length).toBe(delivered);
    expect((await deliveries(hook.id)).length).toBe(1);
  });

  test("an endpoint failing every delivery for FLOWD_WEBHOOK_DISABLE_AFTER_MS is disabled", async () => {
    const hook = await register("/down");
    await runFlow();
    await waitFor(async () => (await deliveries(hook.id)).length === 3, 15_000, "three failed attempts");
    // Failing since its first attempt; once 5 s have passed, the next failure disables it.
    await waitFor(async () => {
      const [row] = await cluster.database.sql<{ old: boolean }[]>`
        select min(created_at) < now() - interval '5 seconds' as old from webhook_deliveries where webhook_id = ${hook.id}`;
      return row?.old;
    }, 15_000, "5 s of failures");
    await runFlow();
    await waitFor(async () => {
      const list = (await cluster.apis[0]!.http("GET", "/v1/webhooks?limit=100")).body.items as any[];
      return list.find((w) => w.id === hook.id)?.disabled;
    }, 15_000, "the endpoint disabled");
    const list = (await cluster.apis[0]!.http("GET", "/v1/webhooks?limit=100")).body.items as any[];
    expect(list.find((w) => w.id === hook.id).disabledReason).toContain("every delivery failed since");
  }, 40_000);

  test("another user's webhook is 404", async () => {
    const hook = await register("/ok", ["*"]);
    const eve = await cluster.newUser("eve-hooks");
    expect((await cluster.apis[0]!.http("DELETE", `/v1/webhooks/${hook.id}`, undefined, { token: eve })).status).toBe(404);
    expect((await cluster.apis[0]!.http("GET", `/v1/webhooks/${hook.id}/deliveries`, undefined, { token: eve })).status).toBe(404);
    expect((await cluster.apis[0]!.http("GET", "/v1/webhooks", undefined, { token: eve })).body.items).toEqual([]);
    expect((await cluster.apis[0]!.http("DELETE", `/v1/webhooks/${hook.id}`)).status).toBe(204);
  });

  test("registration refuses unsafe URLs and unknown event types (default setting), storing nothing", async () => {
    const cases: [string, string[], string][] = [
      ["ftp://example.com/x", ["*"], "invalid_url"],
      ["http://127.0.0.1:9/x", ["*"], "invalid_url"],
      ["http://[::1]/x", ["*"], "invalid_url"],
      ["http://169.254.169.254/latest/meta-data", ["*"], "invalid_url"],
      ["http://10.1.2.3/x", ["*"], "invalid_url"],
      ["http://localhost:1234/x", ["*"], "invalid_url"],
      ["https://93.184.215.14/x", ["flow.exploded"], "invalid_events"],
    ];
    for (const [url, events, code] of cases) {
      const res = await strict.http("POST", "/v1/webhooks", { url, events });
      expect({ url, status: res.status, code: res.body.error?.code }).toEqual({ url, status: 400, code });
    }
    const [row] = await strict.database.sql<{ n: number }[]>`select count(*)::int as n from webhooks`;
    expect(row?.n).toBe(0);
  });
});
