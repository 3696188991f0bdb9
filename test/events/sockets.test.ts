import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startCluster, type Cluster } from "../helpers/cluster";
import { connectWs, eventSeqs, type WsClient } from "../helpers/ws-client";
import { waitFor } from "../helpers/wait";

// Two API processes and a worker process: a flow created through A, watched through B.
let cluster: Cluster;
const clients: WsClient[] = [];
beforeAll(async () => {
  cluster = await startCluster({ apis: 2, workers: 1, tag: "ws" });
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

const open = async (apiIndex: number, token = cluster.token, viaQuery = false) => {
  const c = await connectWs(cluster.apis[apiIndex]!.wsUrl, token, { viaQuery });
  clients.push(c);
  return c;
};

/** What the log holds for one flow, through the API. */
const logged = async (flowId: string, token = cluster.token) => {
  const res = await cluster.apis[0]!.http("GET", `/v1/events?flowId=${flowId}&limit=1000`, undefined, { token });
  expect(res.status).toBe(200);
  return res.body.items as { seq: number; type: string }[];
};

const createFlow = async (apiIndex = 0, token = cluster.token) => {
  const res = await cluster.apis[apiIndex]!.http(
    "POST",
    "/v1/flows",
    { name: "watched", root: { name: "echo", children: [{ name: "echo", data: { a: 1 } }, { name: "sleep", data: { ms: 20 } }] } },
    { token },
  );
  expect(res.status).toBe(201);
  return res.body.id as string;
};

const flowCompleted = (flowId: string) => (m: any) => m.type === "event" && m.event === "flow.completed" && m.flowId === flowId;

describe("events on sockets", () => {
  test("a client on API B sees every event of a flow created through API A, in order, once", async () => {
    const b = await open(1);
    b.send({ op: "subscribe", all: true });
    await b.next((m) => m.type === "subscribed" && m.all === true);
    const flowId = await createFlow(0);
    const done = await b.next(flowCompleted(flowId), 20_000);
    expect(done.status).toBe("completed");
    expect(done.data.result.data).toEqual({});
    const fromLog = await logged(flowId);
    const seen = b.messages.filter((m) => m.type === "event" && m.flowId === flowId);
    expect(seen.map((m) => m.seq)).toEqual(fromLog.map((e) => e.seq));
    expect(seen.map((m) => m.event)).toEqual(fromLog.map((e) => e.type));
    expect(seen[0].event).toBe("flow.created");
    // Each job reached completed, reported as job.updated events.
    const jobsCompleted = seen.filter((m) => m.event === "job.updated" && m.status === "completed");
    expect(jobsCompleted.length).toBe(3);
    const seqs = eventSeqs(b);
    expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
  }, 30_000);

  test("an API with no socket reads only flow-level events, and a socket joining later or mid-flow misses nothing", async () => {
    // A process of its own, so no earlier socket is subscribed there.
    const quiet = await cluster.startApi();
    const metric = async (name: string) => {
      const text = await (await fetch(`${quiet.url}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
    };
    const ran = (await quiet.http("POST", "/v1/flows", { name: "unwatched", root: { name: "echo", children: [{ name: "echo" }, { name: "echo" }] } })).body.id;
    expect((await quiet.http("GET", `/v1/flows/${ran}?wait=20`)).body.status).toBe("completed");
    const ranLog = await logged(ran);
    // The long-poll ended through the listener, which moved past the job updates it skipped.
    await waitFor(async () => (await metric("flowd_listener_last_seq")) >= ranLog[ranLog.length - 1]!.seq, 5_000, "the listener to pass the flow");
    expect(await metric("flowd_events_published_total")).toBe(0);
    const late = await connectWs(quiet.wsUrl, cluster.token);
    clients.push(late);
    late.send({ op: "subscribe", flowId: ran, after: 0 });
    await late.next(flowCompleted(ran), 10_000);
    expect(late.messages.filter((m) => m.type === "event").map((m) => m.seq)).toEqual(ranLog.map((e) => e.seq));

    // Joining while a flow runs, as the listener may be mid-read without job events.
    for (let round = 0; round < 5; round++) {
      const running = (
        await quiet.http("POST", "/v1/flows", {
          name: "joined mid-flow",
          root: { name: "echo", children: Array.from({ length: 8 }, (_, i) => ({ name: "sleep", data: { ms: 20 * i } })) },
        })
      ).body.id;
      const mid = await connectWs(quiet.wsUrl, cluster.token);
      clients.push(mid);
      await Bun.sleep(round * 15);
      mid.send({ op: "subscribe", flowId: running, after: 0 });
      await mid.next(flowCompleted(running), 20_000);
      const seen = mid.messages.filter((m) => m.type === "event").map((m) => m.seq);
      expect(seen).toEqual((await logged(running)).map((e) => e.seq));
      mid.close();
    }
  }, 90_000);

  test("a flow subscription with after replays exactly the missing events, then goes live", async () => {
    const flowId = await createFlow(0);
    const watcher = await open(0);
    // From the start of the log: a flow that finished before a live-only subscription joined would never say so.
    watcher.send({ op: "subscribe", flowId, after: 0 });
    await watcher.next(flowCompleted(flowId), 20_000);
    const all = await logged(flowId);
    const cut = all[Math.floor(all.length / 2)]!.seq;

    const resumed = await open(1);
    resumed.send({ op: "subscribe", flowId, after: cut });
    await resumed.next(flowCompleted(flowId), 10_000);
    expect(eventSeqs(resumed)).toEqual(all.filter((e) => e.seq > cut).map((e) => e.seq));

    // The same socket takes a second subscription, replayed from the start and then live.
    const second = await createFlow(1);
    resumed.send({ op: "subscribe", flowId: second, after: 0 });
    await resumed.next(flowCompleted(second), 20_000);
    const secondLog = await logged(second);
    expect(resumed.messages.filter((m) => m.type === "event" && m.flowId === second).map((m) => m.seq)).toEqual(secondLog.map((e) => e.seq));
  }, 40_000);

  test("events keep coming, none lost, after the LISTEN connection is terminated", async () => {
    const c = await open(1);
    c.send({ op: "subscribe", all: true });
    await c.next((m) => m.type === "subscribed");
    const killed = await cluster.database.sql<{ pid: number }[]>`
      select pg_terminate_backend(pid) as ok, pid from pg_stat_activity
      where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()`;
    expect(killed.length).toBeGreaterThanOrEqual(2);
    const flowIds = [await createFlow(0), await createFlow(1)];
    for (const id of flowIds) await c.next(flowCompleted(id), 20_000);
    for (const id of flowIds) {
      const got = c.messages.filter((m) => m.type === "event" && m.flowId === id).map((m) => m.seq);
      expect(got).toEqual((await logged(id)).map((e) => e.seq));
    }
    // The listeners reconnected (each API logs it).
    await waitFor(() => cluster.apis.every((a) => a.proc.lines.some((l) => l.includes("event listener reconnected"))), 10_000, "reconnect logs");
  }, 40_000);

  test("a job that parks and un-parks is seen live with its waitingFor, appearing and clearing (issue #27)", async () => {
    const c = await open(1);
    const key = `order-${Date.now()}`;
    const created = await cluster.apis[0]!.http("POST", "/v1/flows", {
      name: "gated",
      jobs: [
        { key: "gate", name: "signal", data: { key } },
        { key: "after", name: "echo", dependsOn: ["gate"] },
      ],
    });
    expect(created.status).toBe(201);
    const flowId = created.body.id as string;
    const id = Object.fromEntries((created.body.jobs as { key: string; id: string }[]).map((j) => [j.key, j.id]));
    c.send({ op: "subscribe", flowId, after: 0 });
    const isJob = (jobId: string) => (m: any) => m.type === "event" && m.event === "job.updated" && m.jobId === jobId;
    // The signal step parks: running, holding no slot, waiting for its key.
    const parked = await c.next((m) => isJob(id.gate!)(m) && m.data.waitingFor, 20_000);
    expect(parked.status).toBe("active");
    expect(parked.data.waitingFor).toEqual({ reason: "signal", key });
    const view = (await cluster.apis[0]!.http("GET", `/v1/flows/${flowId}`)).body.jobs.find((j: { key: string }) => j.key === "gate");
    expect(parked.data.waitingFor).toEqual(view.waitingFor);
    const signalled = await cluster.apis[1]!.http("POST", "/v1/signals", { key, payload: { ok: true } });
    expect(signalled.status).toBeLessThan(300);
    // Its completion says nothing holds it any more; its dependent's release from its dependencies
    // (written as it enters Redis: waiting) is an event of its own.
    const done = await c.next((m) => isJob(id.gate!)(m) && m.status === "completed", 20_000);
    expect(done.data.waitingFor).toBeUndefined();
    const released = await c.next((m) => isJob(id.after!)(m) && m.status === "waiting", 20_000);
    expect(released.data.waitingFor).toBeUndefined();
    await c.next(flowCompleted(flowId), 20_000);
    // What the socket saw is the log, in order.
    expect(c.messages.filter((m) => m.type === "event" && m.flowId === flowId).map((m) => m.seq)).toEqual((await logged(flowId)).map((e) => e.seq));
  }, 60_000);

  test("another user sees nothing of the first user's flows", async () => {
    const mallory = await cluster.newUser("mallory");
    const theirs = await open(1, mallory, true);
    theirs.send({ op: "subscribe", all: true });
    await theirs.next((m) => m.type === "subscribed");
    const mine = await open(1);
    mine.send({ op: "subscribe", all: true });
    await mine.next((m) => m.type === "subscribed");
    const flowId = await createFlow(0);
    await mine.next(flowCompleted(flowId), 20_000);
    theirs.send({ op: "subscribe", flowId });
    const refused = await theirs.next((m) => m.type === "error");
    expect(refused.code).toBe("not_found");
    theirs.send({ op: "ping" });
    await theirs.next((m) => m.type === "pong");
    expect(theirs.messages.filter((m) => m.type === "event")).toEqual([]);
    const page = await cluster.apis[0]!.http("GET", `/v1/events?flowId=${flowId}`, undefined, { token: mallory });
    expect(page.body.items).toEqual([]);
  }, 30_000);

  test("a socket without a valid token is refused before the upgrade", async () => {
    for (const token of [undefined, "flowd_wrong"]) {
      const res = await fetch(cluster.apis[0]!.url + "/v1/ws", {
        headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as any).error.code).toBe("unauthorized");
    }
  });

  test("a browser's token as a subprotocol (flowd, flowd.bearer.<token>): accepted, `flowd` selected; a wrong one refused", async () => {
    const ws = new WebSocket(cluster.apis[0]!.wsUrl, ["flowd", `flowd.bearer.${cluster.token}`]);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ op: "ping" }));
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error("the socket with a subprotocol token did not open"));
    });
    expect(ws.protocol).toBe("flowd");
    expect(JSON.parse(reply).type).toBe("pong");
    ws.close();
    const res = await fetch(cluster.apis[0]!.url + "/v1/ws", {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "flowd, flowd.bearer.flowd_wrong",
      },
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.message).toContain("flowd.bearer.");
  });

  test("?token= still works when a proxy adds an Authorization header of its own", async () => {
    const url = `${cluster.apis[0]!.wsUrl}?token=${encodeURIComponent(cluster.token)}`;
    const ws = new WebSocket(url, { headers: { authorization: "Basic cHJveHk6cGFzcw==" } } as any);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ op: "ping" }));
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error("refused"));
    });
    ws.close();
    expect(JSON.parse(reply)).toEqual({ type: "pong" });
  });

  test("bad frames get an error message, and a huge frame closes only that socket", async () => {
    const c = await open(0);
    const cases: [unknown, string][] = [
      ["not json", "invalid_message"],
      [{ op: "dance" }, "invalid_message"],
      [{ op: "subscribe" }, "invalid_message"],
      [{ op: "subscribe", all: true, flowId: "x" }, "invalid_message"],
      [{ op: "subscribe", all: "yes" }, "invalid_message"],
      [{ op: "subscribe", all: true, after: -1 }, "invalid_message"],
      [{ op: "subscribe", flowId: 42 }, "invalid_message"],
      [[1, 2, 3], "invalid_message"],
      [{ op: "subscribe", flowId: "c000000000000000000000000" }, "not_found"],
    ];
    for (const [frame, code] of cases) {
      if (typeof frame === "string") c.sendRaw(frame);
      else c.send(frame);
      const reply = await c.next((m) => m.type === "error");
      expect(reply.code).toBe(code);
      expect(reply.message.length).toBeGreaterThan(10);
    }
    // Each frame got exactly one reply, and every reply is a typed message (nothing else rides along).
    c.send({ op: "ping" });
    await c.next((m) => m.type === "pong");
    expect(c.messages).toHaveLength(cases.length + 1);
    for (const m of c.messages) expect(typeof m?.type).toBe("string");
    c.sendRaw("x".repeat(200 * 1024));
    const closed = await c.closed;
    expect(closed.code).toBe(1009);
    const other = await open(0);
    other.send({ op: "ping" });
    await other.next((m) => m.type === "pong");
  });

  test("job events carry the result exactly as GET shows it, nulls inside included; a large one is truncated", async () => {
    const api = cluster.apis[0]!;
    const run = async (root: unknown) => {
      const created = await api.http("POST", "/v1/flows", { name: "payloads", root });
      expect(created.status).toBe(201);
      let flow = created.body;
      while (flow.status === "running") flow = (await api.http("GET", `/v1/flows/${flow.id}?wait=20`)).body;
      expect(flow.status).toBe("completed");
      const events = (await logged(flow.id)) as unknown as { type: string; status: string; jobId: string; data: any }[];
      const eventOf = (status: string, jobId = flow.root.id) => events.find((e) => e.type === "job.updated" && e.status === status && e.jobId === jobId)!;
      return { flow, eventOf };
    };

    // The sleeping child stays active long enough for that to be recorded on its own.
    const nulls = await run({ name: "echo", data: { a: null, nested: { b: null, c: [null] } }, children: [{ name: "sleep", data: { ms: 300 } }] });
    expect(nulls.eventOf("completed").data.result).toEqual(nulls.flow.root.result);
    expect(nulls.eventOf("completed").data.result.data).toEqual({ a: null, nested: { b: null, c: [null] } });
    // Before completion there is no result to carry, and the key is left out.
    const child = nulls.flow.root.children[0].id;
    expect("result" in nulls.eventOf("active", child).data).toBe(false);
    expect("error" in nulls.eventOf("active", child).data).toBe(false);

    const big = await run({ name: "echo", data: { big: "x".repeat(5_000) } });
    const truncated = big.eventOf("completed").data.result;
    expect(Object.keys(truncated).sort()).toEqual(["bytes", "truncated"]);
    expect(truncated.truncated).toBe(true);
    expect(truncated.bytes).toBeGreaterThan(5_000);
  });

  test("GET /v1/events pages the log in seq order and refuses an expired cursor", async () => {
    const first = await cluster.apis[1]!.http("GET", "/v1/events?limit=3");
    expect(first.status).toBe(200);
    expect(first.body.items.length).toBe(3);
    const next = await cluster.apis[1]!.http("GET", `/v1/events?limit=3&after=${first.body.nextAfter}`);
    expect(next.body.items[0].seq).toBeGreaterThan(first.body.nextAfter);
    await cluster.database.sql`insert into event_log_state (id, pruned_through) values (1, 5)
      on conflict (id) do update set pruned_through = 5`;
    const expired = await cluster.apis[1]!.http("GET", "/v1/events?after=2");
    expect(expired.status).toBe(410);
    expect(expired.body.error.code).toBe("events_expired");
    const c = await open(1);
    c.send({ op: "subscribe", all: true, after: 2 });
    expect((await c.next((m) => m.type === "error")).code).toBe("events_expired");
    await cluster.database.sql`update event_log_state set pruned_through = 0`;
  });
});
