import { afterAll, beforeAll, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { waitFor } from "../helpers/wait";
import { startWebhookReceiver } from "../helpers/webhook-receiver";

// One user's 48 endpoints never answer; another user's webhook latency must not notice. API and
// worker are separate processes (the compiled binary when FLOWD_BIN is set), 16 delivery slots.
const rx = startWebhookReceiver();
let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({
    apis: 1,
    workers: 1,
    tag: "fair",
    env: { WORKER_CONCURRENCY: "16", FLOWD_WEBHOOK_RETRY_SCHEDULE: "1s,1s,1s", FLOWD_SHUTDOWN_TIMEOUT_MS: "3000" },
  });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  rx.stop();
});

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

test("a user with 48 hanging endpoints holds at most their share; another user's deliveries stay fast", async () => {
  const api = cluster.apis[0]!;
  const mallory = await cluster.newUser("mallory-fair");
  for (let i = 0; i < 48; i++) {
    const res = await api.http("POST", "/v1/webhooks", { url: rx.url(`/hang/${i}`), events: ["*"] }, { token: mallory });
    expect(res.status).toBe(201);
  }
  const mine = await api.http("POST", "/v1/webhooks", { url: rx.url("/fast"), events: ["flow.completed"] });
  expect(mine.status).toBe(201);
  rx.trust("/fast", mine.body.secret);

  // Mallory's events: each goes to 48 endpoints that never answer (hundreds of deliveries queued).
  for (let i = 0; i < 5; i++) {
    const res = await api.http("POST", "/v1/flows", { name: "noise", root: { name: "echo", children: [{ name: "echo" }, { name: "echo" }] } }, { token: mallory });
    expect(res.status).toBe(201);
  }
  const runningOf = async () =>
    cluster.database.sql<{ user_id: string; n: number }[]>`
      select user_id, count(*)::int as n from webhook_outbox where state = 'running' group by user_id`;
  await waitFor(async () => (await runningOf()).some((r) => r.n >= 8), 20_000, "mallory's deliveries holding her slots");

  const latencies: number[] = [];
  let mostRunning = 0;
  for (let i = 0; i < 20; i++) {
    const flow = await api.http("POST", "/v1/flows", { name: "mine", root: { name: "echo", data: { i } } });
    expect(flow.status).toBe(201);
    const hit = await waitFor(() => rx.arrivals.find((a) => a.path === "/fast" && a.body.data.flowId === flow.body.id), 30_000, `delivery ${i}`);
    latencies.push(hit.at - Date.parse(hit.body.at));
    for (const r of await runningOf()) mostRunning = Math.max(mostRunning, r.n);
  }
  const [pending = { n: 0 }] = await cluster.database.sql<{ n: number }[]>`select count(*)::int as n from webhook_outbox where state = 'pending'`;
  console.log(
    `other user's event → delivery over ${latencies.length} events: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, ` +
      `max ${Math.max(...latencies)} ms; hanging user's deliveries in Redis at most ${mostRunning} of 16 slots, ${pending.n} waiting as rows`,
  );
  expect(percentile(latencies, 50)).toBeLessThan(1_000);
  // WORKER_CONCURRENCY 16: half is one user's share.
  expect(mostRunning).toBeLessThanOrEqual(8);
  expect(pending.n).toBeGreaterThan(0);
  expect(rx.okCounts("/fast").size).toBe(20);
  expect(rx.badSignatures).toEqual([]);
  // Operators see the backlog waiting as rows.
  const metrics = await (await fetch(`${api.url}/metrics`)).text();
  const waiting = Number(/^flowd_webhook_outbox\{status="pending"\} (\d+)$/m.exec(metrics)?.[1] ?? -1);
  expect(waiting).toBeGreaterThan(0);
}, 180_000);
