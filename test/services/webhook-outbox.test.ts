import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createProducer } from "../../src/queues";
import { createRedis } from "../../src/redis";
import { ensureDispatchCursor } from "../../src/db/queries/webhooks";
import { dispatchWebhooks, handoffJobId } from "../../src/services/webhook-dispatch";
import { reconcileLostDeliveries } from "../../src/services/reconcile-deliveries";
import { deliver, type DeliveryJob } from "../../src/services/webhook-delivery";
import { deletePrefix } from "../helpers/redis";
import { startStack, type Stack } from "../helpers/stack";

// The dispatcher's hand-outs and the reconciler's repair, with no worker running: what the outbox
// hands to Redis stays exactly where the dispatch put it, so the slots and a loss can be looked at.
let stack: Stack;
const redis = createRedis(process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379", "request", "test-outbox");
let producer: ReturnType<typeof createProducer>;

beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "obx", env: { FLOWD_WEBHOOK_SLOTS_PER_USER: "2" } });
  producer = createProducer(redis, stack.config);
  await ensureDispatchCursor(stack.database.db);
});
afterAll(async () => {
  await producer.close();
  redis.disconnect();
  await stack.stop();
});

const deps = () => ({ db: stack.database.db, producer, config: stack.config });
const rows = () =>
  stack.database.sql<{ webhook_id: string; user_id: string; state: string; handoffs: number; next_attempt_at: string; event_seq: string }[]>`
    select webhook_id, user_id, state, handoffs, next_attempt_at::text, event_seq::text from webhook_outbox order by webhook_id, event_seq`;
const inRedis = async (r: { event_seq: string; webhook_id: string; handoffs: number }) =>
  (await redis.exists(`${stack.config.prefix}:webhooks:${handoffJobId({ seq: Number(r.event_seq), webhookId: r.webhook_id, handoff: r.handoffs })}`)) === 1;

describe("the webhook outbox", () => {
  test("hands out within the slots: per user, endpoints taking turns; a Redis loss puts rows back with their due time", async () => {
    const bob = await stack.newUser("bob-outbox");
    const hook = async (path: string, token?: string) =>
      (await stack.http("POST", "/v1/webhooks", { url: `http://127.0.0.1:9/${path}`, events: ["flow.created"] }, token ? { token } : {})).body.id as string;
    const alice = [await hook("a1"), await hook("a2"), await hook("a3")];
    const bobs = await hook("b1", bob);
    for (let i = 0; i < 4; i++) expect((await stack.http("POST", "/v1/flows", { name: "f", root: { name: "echo" } })).status).toBe(201);
    expect((await stack.http("POST", "/v1/flows", { name: "f", root: { name: "echo" } }, { token: bob })).status).toBe(201);

    const first = await dispatchWebhooks(deps());
    expect(first.busy).toBe(false);
    // 4 events × 3 endpoints for alice, 1 for bob; alice gets her 2 slots on 2 different endpoints, bob his own.
    const all = await rows();
    expect(all).toHaveLength(13);
    const running = all.filter((r) => r.state === "running");
    expect(running.filter((r) => alice.includes(r.webhook_id))).toHaveLength(2);
    expect(new Set(running.filter((r) => alice.includes(r.webhook_id)).map((r) => r.webhook_id)).size).toBe(2);
    expect(running.filter((r) => r.webhook_id === bobs)).toHaveLength(1);
    for (const r of running) expect(await inRedis(r)).toBe(true);
    // Nothing more fits until a slot frees.
    expect((await dispatchWebhooks(deps())).released).toBe(0);

    // Redis loses them: the reconciler puts them back as they were, due as before, and they go out again.
    await deletePrefix(stack.config.prefix);
    expect(await reconcileLostDeliveries(deps(), 0)).toBe(3);
    const back = (await rows()).filter((r) => running.some((x) => x.webhook_id === r.webhook_id && x.event_seq === r.event_seq));
    expect(back.map((r) => r.state)).toEqual(["pending", "pending", "pending"]);
    expect(back.map((r) => r.next_attempt_at)).toEqual(running.map((r) => r.next_attempt_at));
    expect((await dispatchWebhooks(deps())).released).toBe(3);
    const again = (await rows()).filter((r) => r.state === "running");
    expect(again.map((r) => [r.webhook_id, r.event_seq, r.handoffs])).toEqual(running.map((r) => [r.webhook_id, r.event_seq, 2]));
    for (const r of again) expect(await inRedis(r)).toBe(true);
    // While Redis holds them, the reconciler leaves them alone.
    expect(await reconcileLostDeliveries(deps(), 0)).toBe(0);

    // Deleting an endpoint deletes its rows: nothing is left waiting for it.
    expect((await stack.http("DELETE", `/v1/webhooks/${alice[0]}`)).status).toBe(204);
    expect((await rows()).filter((r) => r.webhook_id === alice[0])).toHaveLength(0);
  });

  test("a delivery job queued before the outbox is taken into it, with the attempts it had made", async () => {
    const id = (await stack.http("POST", "/v1/webhooks", { url: "http://127.0.0.1:9/legacy", events: ["*"] })).body.id as string;
    const [{ seq } = { seq: 0 }] = await stack.database.sql<{ seq: number }[]>`select max(seq)::int as seq from events`;
    // What an older version queued: no hand-off in its data, two attempts made by BullMQ.
    const legacy = { data: { seq, webhookId: id }, attemptsMade: 2 } as unknown as DeliveryJob;
    expect(await deliver({ db: stack.database.db, config: stack.config, producer }, legacy)).toEqual({ adopted: true });
    const mine = (await rows()).filter((r) => r.webhook_id === id);
    expect(mine.map((r) => [r.event_seq, r.state])).toEqual([[String(seq), "pending"]]);
    const [{ attempts } = { attempts: -1 }] = await stack.database.sql<{ attempts: number }[]>`
      select attempts from webhook_outbox where webhook_id = ${id}`;
    expect(attempts).toBe(2);
  });

  test("an endpoint with a delivery being retried gets one slot, not its user's two", async () => {
    const dave = await stack.newUser("dave-outbox");
    const id = (await stack.http("POST", "/v1/webhooks", { url: "http://127.0.0.1:9/slow", events: ["flow.created"] }, { token: dave })).body.id as string;
    for (let i = 0; i < 3; i++) expect((await stack.http("POST", "/v1/flows", { name: "f", root: { name: "echo" } }, { token: dave })).status).toBe(201);
    await dispatchWebhooks(deps());
    const running = async () => (await rows()).filter((r) => r.webhook_id === id && r.state === "running").length;
    expect(await running()).toBe(2);
    // One of them failed (timed out, say) and waits for its retry, due now; the other is still out.
    await stack.database.sql`
      update webhook_outbox set state = 'pending', attempts = 1, handed_at = null
      where webhook_id = ${id} and event_seq = (select min(event_seq) from webhook_outbox where webhook_id = ${id})`;
    expect(await running()).toBe(1);
    expect((await dispatchWebhooks(deps())).released).toBe(0);
    expect(await running()).toBe(1);
  });
});
