import { afterAll, beforeAll, expect, test } from "bun:test";
import { Queue } from "bullmq";
import { createLogger } from "../../src/log";
import { createProducer, type Producer } from "../../src/queues";
import { connectRedis, type RedisClient } from "../../src/redis";
import { createFlow } from "../../src/services/flows";
import { builtinRegistry } from "../../src/services/handler-registry";
import { createWaiters } from "../../src/services/waiters";
import { WEBHOOKS_QUEUE } from "../../src/services/webhooks";
import { AIMED, shardPrefix } from "../../src/shards";
import { startCountingReceiver } from "../helpers/receiver";
import { countKeys } from "../helpers/redis";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// An upgrade from the first tag scheme ({<prefix>-<n>}, stored as shard n) to aimed tags: work the
// previous version left in Redis, with no worker running, is still run after the switch.
let stack: Stack;
let redis: RedisClient;
let legacy: Producer;
const receiver = startCountingReceiver();
beforeAll(async () => {
  stack = await startStack({ workers: 0, tag: "up", env: { FLOWD_SHARDS: "3" } });
  redis = connectRedis(stack.config, "request", "test-legacy");
  const producer = createProducer(redis, stack.config);
  // The previous version's pick: shard n of {<prefix>-<n>}. Shards 1 and 2 only, so that shard 0
  // is left with nothing but a webhook delivery, which no row names.
  let i = 0;
  legacy = { ...producer, pick: () => 1 + (i++ % 2) };
});
afterAll(async () => {
  await legacy?.close();
  redis?.disconnect();
  await stack?.stop();
  receiver.stop();
});

const flow = (key: string) => ({
  name: `f-${key}`,
  root: {
    name: "http",
    data: { url: receiver.url(`/${key}/root`), method: "POST" },
    children: [{ name: "http", data: { url: receiver.url(`/${key}/child`), method: "POST" } }],
  },
});

test("flows and a webhook delivery left under the first scheme's tags run after the switch to aimed tags; new work goes to aimed tags", async () => {
  const [user] = await stack.database.sql<{ id: string }[]>`select id from users where name = 'alice'`;
  const deps = { config: stack.config, db: stack.database.db, producer: legacy, log: createLogger("silent"), waiters: createWaiters(), broadcastCancel: async () => {}, registry: builtinRegistry(stack.config) };
  for (let i = 0; i < 6; i++) await createFlow(deps, { userId: user!.id }, flow(`old${i}`));
  const stored = await stack.database.sql<{ shard: number; n: number }[]>`select shard, count(*)::int as n from flow_jobs group by shard order by shard`;
  expect(stored.map((r) => r.shard)).toEqual([1, 2]);
  for (const n of [1, 2]) expect(await countKeys(shardPrefix(stack.config.prefix, n))).toBeGreaterThan(0);

  // A delivery the previous version added to its home, shard 0 (`{<prefix>-0}:webhooks`).
  const hook = await stack.http("POST", "/v1/webhooks", { url: receiver.url("/hook"), events: ["*"] });
  expect(hook.status).toBe(201);
  const [first] = await stack.database.sql<{ seq: number }[]>`select min(seq)::int as seq from events`;
  const oldHome = new Queue(WEBHOOKS_QUEUE, { connection: redis, prefix: shardPrefix(stack.config.prefix, 0) });
  await oldHome.add("deliver", { seq: first!.seq, webhookId: hook.body.id }, { jobId: "left-by-the-previous-version" });

  const worker = await stack.startWorker({ FLOWD_SHARDS: "3" });
  await waitFor(
    async () => (await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows where status <> 'completed'`)[0]!.n === 0,
    40_000,
    "the previous version's flows completed",
  );
  for (let i = 0; i < 6; i++) for (const job of ["root", "child"]) expect(receiver.hits.get(`/old${i}/${job}`)).toBe(1);
  await waitFor(async () => (await oldHome.getJobState("left-by-the-previous-version")) === "completed", 40_000, "the old home's delivery taken");
  // Completing the old job may only take it into the outbox (see README "Webhooks"): the POST
  // itself follows as the outbox's own delivery, so the hit is waited for, not expected at once.
  await waitFor(async () => (receiver.hits.get("/hook") ?? 0) > 0, 40_000, "the old home's delivery sent");
  await worker.waitForLine(/"serving shards that stored rows or waiting deliveries still use"/);
  await oldHome.close();

  // New work lands on aimed shards only, and runs.
  for (let i = 0; i < 6; i++) expect((await stack.http("POST", "/v1/flows", flow(`new${i}`))).status).toBe(201);
  await waitFor(
    async () => (await stack.database.sql<{ n: number }[]>`select count(*)::int as n from flows where status <> 'completed'`)[0]!.n === 0,
    40_000,
    "the new flows completed",
  );
  const fresh = await stack.database.sql<{ shard: number }[]>`select distinct j.shard from flow_jobs j join flows f on f.id = j.flow_id where f.name like 'f-new%'`;
  expect(fresh.every((r) => r.shard >= AIMED)).toBe(true);
}, 120_000);
