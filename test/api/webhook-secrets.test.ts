import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac, randomBytes } from "node:crypto";
import { newId } from "../../src/ids";
import { spawnFlowd } from "../helpers/process";
import { startStack, type Stack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

// The API in this process and worker processes, all with FLOWD_SECRET_KEY, delivering to a loopback
// receiver; then workers with another key and with none, to see the failures they report.
const KEY = randomBytes(32).toString("base64");
const OTHER_KEY = randomBytes(32).toString("hex");
const UNSET_WARNING = "FLOWD_SECRET_KEY is not set: webhook secrets are stored unencrypted; set it to a 32-byte base64 key";

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}
const received: Received[] = [];
const receiver = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    received.push({ path: new URL(req.url).pathname, headers: Object.fromEntries(req.headers), body: await req.text() });
    return new Response("ok");
  },
});
const at = (path: string) => `http://127.0.0.1:${receiver.port}${path}`;

/** Whether `hit` carries a valid Standard Webhooks signature under `secret`. */
function verifies(hit: Received, secret: string): boolean {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const signed = createHmac("sha256", key).update(`${hit.headers["webhook-id"]}.${hit.headers["webhook-timestamp"]}.${hit.body}`).digest("base64");
  return hit.headers["webhook-signature"] === `v1,${signed}`;
}

let stack: Stack;
beforeAll(async () => {
  // Retries start at 300 ms and double: eight attempts last over a minute, far longer than a worker swap.
  stack = await startStack({
    workers: 0,
    tag: "hooksecret",
    env: { FLOWD_SECRET_KEY: KEY, FLOWD_WEBHOOK_RETRY_SCHEDULE: "300ms,600ms,1200ms,2400ms,4800ms,9600ms,19200ms" },
  });
}, 60_000);
afterAll(async () => {
  await stack?.stop();
  receiver.stop(true);
});

const rowsAsText = async () => (await stack.database.sql<{ row: string }[]>`select w::text as row from webhooks w`).map((r) => r.row).join("\n");
const storedSecret = async (id: string) => (await stack.database.sql<{ secret: string }[]>`select secret from webhooks where id = ${id}`)[0]!.secret;
const runFlow = async () => {
  const created = await stack.http("POST", "/v1/flows", { name: "hooked", root: { name: "echo", data: { v: 1 } } });
  expect(created.status).toBe(201);
  const done = await stack.http("GET", `/v1/flows/${created.body.id}?wait=20`);
  expect(done.body.status).toBe("completed");
  return done.body as { id: string };
};
const deliveryOf = (path: string, flowId: string) => () => received.find((r) => r.path === path && JSON.parse(r.body).data.flowId === flowId);
const deliveries = async (id: string) => (await stack.http("GET", `/v1/webhooks/${id}/deliveries?limit=200`)).body.items as any[];
const stopWorkers = async () => {
  for (const w of stack.workers.splice(0)) expect(await w.stop("SIGTERM")).toBe(0);
};

let hook: { id: string; secret: string };
let legacy: { id: string; secret: string };

describe("webhook secrets at rest", () => {
  test("a secret stored in clear before the key was set is sealed when a worker starts", async () => {
    const [alice] = await stack.database.sql<{ id: string }[]>`select id from users where name = 'alice'`;
    legacy = { id: newId(), secret: `whsec_${randomBytes(32).toString("base64")}` };
    await stack.database.sql`
      insert into webhooks (id, user_id, url, events, secret)
      values (${legacy.id}, ${alice!.id}, ${at("/legacy")}, ${JSON.stringify(["flow.completed"])}::jsonb, ${legacy.secret})`;
    expect(await storedSecret(legacy.id)).toBe(legacy.secret);

    // An http tasks' signing secret from before the key, with a rotation's previous one: both in clear.
    const signing = { current: `whsec_${randomBytes(32).toString("base64")}`, previous: `whsec_${randomBytes(32).toString("base64")}` };
    await stack.database.sql`
      insert into signing_secrets (user_id, secret, previous_secret, previous_until)
      values (${alice!.id}, ${signing.current}, ${signing.previous}, now() + interval '1 hour')`;

    const worker = await stack.startWorker();
    expect(await storedSecret(legacy.id)).toMatch(/^v1:/);
    const [stored] = await stack.database.sql<{ secret: string; previous_secret: string }[]>`select secret, previous_secret from signing_secrets`;
    expect([stored!.secret.slice(0, 3), stored!.previous_secret.slice(0, 3)]).toEqual(["v1:", "v1:"]);
    const shown = await stack.http("GET", "/v1/signing-secret");
    expect([shown.body.secret, shown.body.previousSecret]).toEqual([signing.current, signing.previous]);
    expect(await rowsAsText()).not.toContain(legacy.secret.slice("whsec_".length));
    expect(worker.lines.some((l) => l.includes("sealed webhook secrets stored in clear") && l.includes('"sealed":1'))).toBe(true);
    expect(worker.lines.some((l) => l.includes(UNSET_WARNING))).toBe(false);
  });

  test("a new secret is shown once in clear, stored sealed, and signs deliveries", async () => {
    const res = await stack.http("POST", "/v1/webhooks", { url: at("/hook"), events: ["flow.completed"] });
    expect(res.status).toBe(201);
    hook = res.body;
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{40,}={0,2}$/);

    const rows = await rowsAsText();
    expect(rows).toContain(hook.id);
    expect(rows).not.toContain(hook.secret);
    expect(rows).not.toContain(hook.secret.slice("whsec_".length));
    expect(rows).not.toContain(hook.secret.slice("whsec_".length, "whsec_".length + 16));
    expect(await storedSecret(hook.id)).toMatch(/^v1:[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}$/);

    const flow = await runFlow();
    const hit = await waitFor(deliveryOf("/hook", flow.id), 15_000, "the delivery");
    expect(verifies(hit, hook.secret)).toBe(true);
    expect(verifies(hit, legacy.secret)).toBe(false);
    const legacyHit = await waitFor(deliveryOf("/legacy", flow.id), 15_000, "the delivery to the endpoint from before the key");
    expect(verifies(legacyHit, legacy.secret)).toBe(true);
  });

  test("a worker with another key records that the key does not match; the right key delivers a later attempt", async () => {
    await stopWorkers();
    await stack.startWorker({ FLOWD_SECRET_KEY: OTHER_KEY });
    const flow = await runFlow();
    const failed = await waitFor(async () => (await deliveries(hook.id)).find((d) => d.error?.includes("does not match")), 15_000, "the failed attempt");
    expect(failed).toMatchObject({ statusCode: null });
    expect(failed.error).toContain("FLOWD_SECRET_KEY");
    expect(received.some((r) => r.path === "/hook" && JSON.parse(r.body).data.flowId === flow.id)).toBe(false);

    await stopWorkers();
    await stack.startWorker();
    const hit = await waitFor(deliveryOf("/hook", flow.id), 30_000, "the retried delivery");
    expect(verifies(hit, hook.secret)).toBe(true);
    const attempts = await waitFor(async () => {
      const list = (await deliveries(hook.id)).filter((d) => d.eventSeq === failed.eventSeq);
      return list.some((d) => d.statusCode === 200) ? list : null;
    }, 10_000, "the successful attempt on record");
    expect(attempts.length).toBeGreaterThan(1);
    // The key's fault is not the endpoint's.
    const listed = (await stack.http("GET", "/v1/webhooks")).body.items as any[];
    expect(listed.find((w) => w.id === hook.id).disabled).toBe(false);
  }, 60_000);

  test("without a key every role warns once at start, stays ready, and a sealed secret fails saying the key is missing", async () => {
    await stopWorkers();
    const worker = await stack.startWorker({ FLOWD_SECRET_KEY: "" });
    expect(worker.lines.filter((l) => l.includes(UNSET_WARNING))).toHaveLength(1);
    expect(JSON.parse(worker.lines.find((l) => l.includes(UNSET_WARNING))!).level).toBe("warn");

    const api = spawnFlowd(["--role=api"], { ...stack.env, FLOWD_SECRET_KEY: "", LOG_LEVEL: "info" });
    try {
      const { url } = JSON.parse(await api.waitForLine(/"listening"/)) as { url: string };
      await api.waitForLine(/"flowd ready"/);
      expect(api.lines.filter((l) => l.includes(UNSET_WARNING))).toHaveLength(1);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      // Not its exit code: a SIGTERM right after "flowd ready" can come before runService's handlers exist.
      await api.stop("SIGTERM");
    }

    const flow = await runFlow();
    const failed = await waitFor(
      async () => (await deliveries(hook.id)).find((d) => d.error?.includes("FLOWD_SECRET_KEY is not set")),
      15_000,
      "the attempt failed for want of a key",
    );
    expect(failed.statusCode).toBeNull();
    expect(received.some((r) => r.path === "/hook" && JSON.parse(r.body).data.flowId === flow.id)).toBe(false);
    expect(worker.proc.exitCode).toBeNull();
  }, 60_000);
});
