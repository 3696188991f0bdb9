import { afterAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { deletePrefix } from "../helpers/redis";
import { startRedisServer } from "../helpers/redis-server";
import { waitFor } from "../helpers/wait";
import { startWebhookReceiver } from "../helpers/webhook-receiver";

// Webhook deliveries whose first attempts failed, then Redis loses everything: the outbox rows in
// Postgres bring every one back, on schedule, each answered 2xx once. API and worker are separate
// processes (the compiled binary when FLOWD_BIN is set).
const RETRY_MS = 3_000;
const env = {
  FLOWD_WEBHOOK_RETRY_SCHEDULE: `${RETRY_MS}ms,${RETRY_MS}ms,${RETRY_MS}ms`,
  FLOWD_RECONCILE_INTERVAL_MS: "1000",
  FLOWD_LOCK_DURATION_MS: "2000",
  FLOWD_STALLED_INTERVAL_MS: "1000",
};
const rx = startWebhookReceiver();
const clusters: Cluster[] = [];
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  await Promise.allSettled(clusters.map((c) => c.stop()));
  for (const stop of stops) await stop();
  rx.stop();
});

/**
 * Registers a webhook for flow.completed at `path` on a receiver answering 500, completes 5 flows,
 * waits for the 5 failed first attempts, runs `lose`, heals the receiver, and checks that all 5 are
 * delivered within the schedule, each webhook-id answered 2xx exactly once, none retried early.
 */
async function deliveredAfterLoss(cluster: Cluster, path: string, lose: () => Promise<void>) {
  const api = cluster.apis[0]!;
  rx.answer("fail");
  const hook = await api.http("POST", "/v1/webhooks", { url: rx.url(path), events: ["flow.completed"] });
  expect(hook.status).toBe(201);
  rx.trust(path, hook.body.secret);
  for (let i = 0; i < 5; i++) {
    const flow = await api.http("POST", "/v1/flows", { name: "outbox", root: { name: "echo", data: { i } } });
    expect((await api.http("GET", `/v1/flows/${flow.body.id}?wait=20`)).body.status).toBe("completed");
  }
  const failedIds = () => new Set(rx.arrivals.filter((a) => a.path === path && a.status === 500).map((a) => a.id));
  await waitFor(() => failedIds().size === 5, 20_000, "5 first attempts answered 500");
  const [{ n: running } = { n: -1 }] = await cluster.database.sql<{ n: number }[]>`
    select count(*)::int as n from webhook_outbox where webhook_id = ${hook.body.id} and state <> 'done'`;
  expect(running).toBe(5);

  await lose();
  const lostAt = Date.now();
  rx.answer("ok");
  await waitFor(() => rx.okCounts(path).size === 5, 30_000, "all 5 delivered after the loss");
  const took = Date.now() - lostAt;
  console.log(`5 deliveries recovered ${took} ms after the loss (retry schedule ${RETRY_MS} ms ±10%)`);
  // Within the schedule: each is due at most 3.3 s after its failure; the rest is the pass that hands it out.
  expect(took).toBeLessThan(RETRY_MS * 1.1 + 5_000);
  // Every row ended, so no copy of any delivery is left anywhere to arrive later.
  await waitFor(async () => {
    const [row] = await cluster.database.sql<{ open: number }[]>`
      select count(*) filter (where state <> 'done')::int as open from webhook_outbox where webhook_id = ${hook.body.id}`;
    return row?.open === 0;
  }, 10_000, "every outbox row done");
  const ok = rx.okCounts(path);
  expect([...ok.keys()].sort()).toEqual([...failedIds()].sort());
  for (const [id, n] of ok) expect({ id, n }).toEqual({ id, n: 1 });
  expect(rx.badSignatures).toEqual([]);
  // No retry went out before its time: each 2xx came at least the schedule's lower bound after the 500.
  for (const id of ok.keys()) {
    const mine = rx.arrivals.filter((a) => a.id === id);
    expect(mine[mine.length - 1]!.at - mine[0]!.at).toBeGreaterThanOrEqual(RETRY_MS * 0.9 - 50);
  }
  const log = (await api.http("GET", `/v1/webhooks/${hook.body.id}/deliveries`)).body.items as { attempt: number; statusCode: number }[];
  expect(log.filter((d) => d.statusCode === 200)).toHaveLength(5);
  expect(log.filter((d) => d.statusCode === 500 && d.attempt === 1)).toHaveLength(5);
}

describe("webhook deliveries survive Redis losing them", () => {
  test("the prefix's Redis keys deleted after 5 failed first attempts: all 5 delivered, once each", async () => {
    const cluster = await startCluster({ apis: 1, workers: 1, tag: "obxkeys", env });
    clusters.push(cluster);
    await deliveredAfterLoss(cluster, "/keys", () => deletePrefix(cluster.prefix));
  }, 120_000);

  test("Redis restarted empty after 5 failed first attempts: all 5 delivered, once each", async () => {
    const redis = await startRedisServer();
    stops.push(() => redis.dispose());
    const cluster = await startCluster({ apis: 1, workers: 1, tag: "obxempty", env: { ...env, REDIS_URL: redis.url } });
    clusters.push(cluster);
    await deliveredAfterLoss(cluster, "/empty", async () => {
      await redis.stop();
      await redis.start();
    });
  }, 120_000);
});
