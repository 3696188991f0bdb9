import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { startStack, type Stack } from "../helpers/stack";
import { connectWs, eventSeqs, type WsClient } from "../helpers/ws-client";
import { waitFor } from "../helpers/wait";

const MiB = 1024 * 1024;
const SEEDED = 100_000;
const PAIRS = 10_000;

/**
 * A WebSocket client over raw TCP that upgrades, then stops reading (`pause`: the server sees TCP
 * backpressure) and only writes: a hostile client that floods and never drains its replies.
 */
async function nonReadingSocket(baseUrl: string, token: string) {
  const url = new URL(baseUrl);
  let head = "";
  let upgraded!: () => void;
  let refused!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => ((upgraded = resolve), (refused = reject)));
  let pending: Buffer | null = null;
  let written!: () => void;
  let closed = false;
  const flush = (s: Socket<undefined>) => {
    while (pending && pending.length > 0) {
      const n = s.write(pending);
      if (n <= 0) return;
      pending = pending.subarray(n);
    }
    if (pending) {
      pending = null;
      written();
    }
  };
  const socket = await Bun.connect({
    hostname: url.hostname,
    port: Number(url.port),
    socket: {
      open(s) {
        s.write(
          `GET /v1/ws HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64")}\r\n` +
            `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
        );
      },
      data(s, chunk) {
        if (head.includes("\r\n\r\n")) return; // read before the pause took effect: dropped, as unread
        head += chunk.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        if (!head.startsWith("HTTP/1.1 101")) return refused(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
        s.pause();
        upgraded();
      },
      drain: (s) => flush(s),
      close() {
        closed = true;
        if (pending) {
          pending = null;
          written();
        }
      },
      error: (_s, err) => refused(err),
    },
  });
  await ready;
  return {
    get closed() {
      return closed;
    },
    /** Resolves once every byte went to the kernel (or the connection ended). */
    write(data: Buffer) {
      return new Promise<void>((resolve) => {
        written = resolve;
        pending = data;
        flush(socket);
      });
    },
    close: () => socket.terminate(),
  };
}

/** A masked client text frame (zero mask: the payload stays as it is). */
const frame = (msg: unknown) => {
  const payload = Buffer.from(JSON.stringify(msg));
  if (payload.length > 125) throw new Error("frames here are small");
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
};
const floodFrames = () => {
  const pair = Buffer.concat([frame({ op: "subscribe", all: true, after: 0 }), frame({ op: "unsubscribe", all: true })]);
  return Buffer.concat(Array.from({ length: PAIRS }, () => pair));
};

const wsUrl = (s: Stack) => s.baseUrl.replace(/^http/, "ws") + "/v1/ws";
const createFlow = async (s: Stack, token: string, name = "seed") => {
  const res = await s.http("POST", "/v1/flows", { name, root: { name: "echo", children: [{ name: "echo" }] } }, { token });
  expect(res.status).toBe(201);
  return res.body.id as string;
};

/** Appends `count` job events to a flow's log in one statement, and rings the doorbell as the triggers do. */
async function appendEvents(s: Stack, flowId: string, count: number): Promise<number> {
  const [row] = await s.database.sql<{ top: string }[]>`
    with ins as (
      insert into events (user_id, flow_id, job_id, type, status, data)
      select f.user_id, f.id, f.root_id, 'job.updated', (array['waiting', 'active', 'completed'])[1 + g % 3],
             jsonb_build_object('id', f.root_id, 'jobId', f.root_id || ':' || g, 'name', 'echo', 'queueName', 'flows',
                                'attemptsMade', g % 3, 'result', jsonb_build_object('data', jsonb_build_object('n', g)))
      from flows f cross join generate_series(1, ${count}::int) g
      where f.id = ${flowId}
      order by g
      returning seq
    )
    select max(seq)::text as top, flowd_notify_events(max(seq)) as rung from ins`;
  const top = Number(row!.top);
  await waitFor(() => s.api.hub.lastSeq >= top, 30_000, `the listener to reach seq ${top}`);
  return top;
}

/** Every seq of a user's log (the user who owns `flowId`), in order. */
const userLog = async (s: Stack, flowId: string) =>
  (await s.database.sql<{ s: string }[]>`
    select e.seq::text as s from events e where e.user_id = (select user_id from flows where id = ${flowId}) order by e.seq`).map((r) => Number(r.s));

const max = (xs: number[]) => xs.reduce((a, b) => Math.max(a, b), 0);

describe("a socket flooding subscriptions (no message rate limit)", () => {
  let stack: Stack;
  let seedFlow: string;
  let bob: string;
  const clients: WsClient[] = [];
  beforeAll(async () => {
    // The message rate limit is off here, so the flood reaches the replay machinery itself.
    stack = await startStack({ workers: 0, tag: "flood", env: { FLOWD_SOCKET_MESSAGE_RATE: "0" } });
    seedFlow = await createFlow(stack, stack.token);
    await appendEvents(stack, seedFlow, SEEDED);
    bob = await stack.newUser("bob");
    await createFlow(stack, bob, "bob's");
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await stack?.stop();
  });

  test("10,000 subscribe{all, after: 0}/unsubscribe pairs from a client that never reads: bounded memory, other users unaffected", async () => {
    const hub = stack.api.hub;
    const bobGet = async () => {
      const t0 = performance.now();
      const res = await stack.http("GET", "/v1/flows", undefined, { token: bob });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBe(1);
      return performance.now() - t0;
    };
    await bobGet();
    const frames = floodFrames();
    Bun.gc(true);
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const before = { messages: hub.stats.socketMessages, pages: hub.stats.replayPages };
    const t0 = performance.now();

    const hostile = await nonReadingSocket(stack.baseUrl, stack.token);
    // Bob asks every 20 ms while the flood is handled (the requests overlap if the API is slow).
    const during: number[] = [];
    const asked: Promise<number>[] = [];
    const asking = setInterval(() => asked.push(bobGet().then((ms) => (during.push(ms), ms))), 20);
    asked.push(bobGet().then((ms) => (during.push(ms), ms)));
    await hostile.write(frames);
    await waitFor(
      () => hub.stats.socketMessages - before.messages >= 2 * PAIRS && hub.stats.subscribing === 0,
      60_000,
      "the API to work through the flood",
      5,
    );
    const floodMs = performance.now() - t0;
    clearInterval(asking);
    await Promise.all(asked);
    const after: number[] = [];
    for (let i = 0; i < 5; i++) after.push(await bobGet());
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);

    const pages = hub.stats.replayPages - before.pages;
    console.log(
      `flood: ${frames.length} bytes, ${2 * PAIRS} messages handled in ${floodMs.toFixed(0)} ms; ` +
        `RSS ${(base / MiB).toFixed(0)} MiB -> peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - base) / MiB).toFixed(1)}); ` +
        `log pages read ${pages}; bob's GET /v1/flows during the flood: n=${during.length} max ${max(during).toFixed(1)} ms, after: max ${max(after).toFixed(1)} ms`,
    );
    expect(hostile.closed).toBe(false); // nothing cut it off: the bounds below are the replay's own
    expect(peak - base).toBeLessThanOrEqual(200 * MiB);
    expect(during.length).toBeGreaterThanOrEqual(1);
    expect(max([...during, ...after])).toBeLessThanOrEqual(2_000);
    // Every subscribe was replaced before or soon after its replay began: a handful of pages, not 10,000 × 200.
    expect(pages).toBeLessThanOrEqual(20);
    hostile.close();

    // The API still serves this user's sockets.
    const log = await userLog(stack, seedFlow);
    const c = await connectWs(wsUrl(stack), stack.token);
    clients.push(c);
    c.send({ op: "subscribe", all: true, after: log[log.length - 6]! });
    await waitFor(() => eventSeqs(c).length === 5, 10_000, "the last five events");
    expect(eventSeqs(c)).toEqual(log.slice(-5));
    c.close();
  }, 120_000);

  test("a replay to a client that stops reading waits for it (about a page past what the socket holds), then finishes in order", async () => {
    const hub = stack.api.hub;
    const log = await userLog(stack, seedFlow);
    const pagesBefore = hub.stats.replayPages;
    const ws = new WebSocket(wsUrl(stack), { headers: { authorization: `Bearer ${stack.token}` } } as any);
    const seqs: number[] = [];
    const others: any[] = [];
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data));
      if (m.type === "event") seqs.push(m.seq);
      else others.push(m);
    };
    await new Promise<void>((resolve, reject) => ((ws.onopen = () => resolve()), (ws.onerror = () => reject(new Error("cannot connect")))));
    try {
      ws.pause();
      ws.send(JSON.stringify({ op: "subscribe", all: true, after: 0 }));
      await waitFor(() => hub.stats.replaysWaiting === 1, 20_000, "the replay to wait for the socket");
      const pagesWhileStalled = hub.stats.replayPages - pagesBefore;
      // What the kernel holds on both sides of the loopback, the socket's 256 KiB, and one page.
      expect(pagesWhileStalled).toBeLessThan(200 / 4);
      ws.resume();
      await waitFor(() => seqs.length >= log.length, 60_000, "the whole log");
      expect(seqs).toEqual(log);
      expect(others.filter((m) => m.type !== "subscribed")).toEqual([]);
      console.log(`paced replay: ${pagesWhileStalled} of ${Math.ceil(log.length / 500)} pages read while the client did not read`);
    } finally {
      ws.close();
    }
  }, 120_000);

  test("a replay cut short by a new subscribe with after stops at once; the new one delivers in order, none twice, then live", async () => {
    const log = await userLog(stack, seedFlow);
    const c = await connectWs(wsUrl(stack), stack.token);
    clients.push(c);
    c.send({ op: "subscribe", all: true, after: 0 });
    await c.next((m) => m.type === "event");
    const resumeAfter = max(eventSeqs(c));
    c.send({ op: "subscribe", all: true, after: resumeAfter });
    const cut = await c.next((m) => m.type === "error");
    expect(cut).toMatchObject({ code: "superseded", all: true });
    await c.next((m) => m.type === "subscribed" && m.after === resumeAfter);
    const top = await appendEvents(stack, seedFlow, 3); // live ones, after the replay
    // Polled rather than `next`, which rescans the messages on every one of these 100,000.
    await waitFor(() => c.messages[c.messages.length - 1]?.seq === top, 60_000, `seq ${top}`, 50);

    const cutAt = c.messages.indexOf(cut);
    const ackAt = c.messages.findIndex((m) => m.type === "subscribed" && m.after === resumeAfter);
    const seqsOf = (ms: any[]) => ms.filter((m) => m.type === "event").map((m) => m.seq as number);
    // The first replay was cut mid-way, and sent exactly the log up to where it says it got.
    expect(cut.after).toBeLessThan(log[log.length - 1]!);
    expect(seqsOf(c.messages.slice(0, cutAt))).toEqual(log.filter((s) => s <= cut.after));
    // Nothing of it followed the cut; the second has everything after its `after`, once, in order.
    expect(seqsOf(c.messages.slice(cutAt, ackAt))).toEqual([]);
    const full = await userLog(stack, seedFlow);
    expect(seqsOf(c.messages.slice(ackAt))).toEqual(full.filter((s) => s > resumeAfter));
    c.close();
  }, 120_000);
});

describe("socket limits", () => {
  let stack: Stack;
  const clients: WsClient[] = [];
  beforeAll(async () => {
    stack = await startStack({ workers: 0, tag: "wslimits", env: { FLOWD_SOCKETS_PER_USER: "3", FLOWD_SOCKET_SUBSCRIPTIONS: "5" } });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await stack?.stop();
  });
  const open = async (token = stack.token) => {
    const c = await connectWs(wsUrl(stack), token);
    clients.push(c);
    return c;
  };
  const upgrade = (token: string) =>
    fetch(stack.baseUrl + "/v1/ws", {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13", authorization: `Bearer ${token}` },
    });

  test("sockets per user: the upgrade beyond the limit is refused with 429, and a closed socket frees its place", async () => {
    const carol = await stack.newUser("carol");
    const mine = [await open(carol), await open(carol), await open(carol)];
    const refused = await upgrade(carol);
    expect(refused.status).toBe(429);
    const body = (await refused.json()) as any;
    expect(body.error.code).toBe("too_many_sockets");
    expect(body.error.message).toContain("FLOWD_SOCKETS_PER_USER");
    // Another user is not affected.
    const other = await open();
    other.send({ op: "ping" });
    await other.next((m) => m.type === "pong");
    mine[0]!.close();
    await mine[0]!.closed;
    const again = await waitFor(() => open(carol), 5_000, "carol's socket to be admitted again");
    again.send({ op: "ping" });
    await again.next((m) => m.type === "pong");
  });

  test("subscriptions per socket: beyond the limit an error, all still allowed, and an unsubscribe frees a place", async () => {
    const flows = await Promise.all(Array.from({ length: 6 }, (_, i) => createFlow(stack, stack.token, `limit ${i}`)));
    const c = await open();
    for (const flowId of flows) c.send({ op: "subscribe", flowId });
    // Replies to the first five come as their lookups finish; the sixth is refused on arrival.
    // (Counted apart from events: a subscribed flow's live events may arrive in between.)
    const replies = () => c.messages.filter((m) => m.type === "subscribed" || m.type === "error");
    await waitFor(() => replies().length === 6, 10_000, "six replies");
    expect(c.messages.filter((m) => m.type === "error")).toMatchObject([{ code: "too_many_subscriptions", flowId: flows[5] }]);
    expect(c.messages.filter((m) => m.type === "subscribed").map((m) => m.flowId).sort()).toEqual(flows.slice(0, 5).sort());
    c.send({ op: "subscribe", flowId: flows[5] });
    await waitFor(() => replies().length === 7, 10_000, "a seventh reply");
    expect(replies()[6]).toMatchObject({ type: "error", code: "too_many_subscriptions" });
    c.send({ op: "unsubscribe", flowId: flows[0] });
    await c.next((m) => m.type === "unsubscribed" && m.flowId === flows[0]);
    c.send({ op: "subscribe", flowId: flows[5] });
    await c.next((m) => m.type === "subscribed" && m.flowId === flows[5]);
    c.send({ op: "subscribe", all: true, after: 0 });
    await c.next((m) => m.type === "subscribed" && m.all === true);
    // The replay covers every flow's events (flow.created for each), none twice.
    await waitFor(() => c.messages.filter((m) => m.type === "event" && m.event === "flow.created").length >= 6, 10_000, "the replayed flow.created events");
    const seqs = eventSeqs(c);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
  });

  test("message rate: a flood gets one error, then the socket is closed with 1008", async () => {
    const c = await open();
    for (let i = 0; i < 1_000; i++) c.send({ op: "ping" });
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    const errors = c.messages.filter((m) => m.type === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0].code).toBe("rate_limited");
    const pongs = c.messages.filter((m) => m.type === "pong").length;
    expect(pongs).toBeGreaterThanOrEqual(200);
    expect(pongs).toBeLessThan(260);
  });

  test("with the defaults, the subscribe/unsubscribe flood from a client that never reads is cut off after the burst", async () => {
    const hub = stack.api.hub;
    const clientsNow = async () => Number(/^flowd_socket_clients (\d+)$/m.exec(await (await fetch(`${stack.baseUrl}/metrics`)).text())?.[1]);
    const baseline = await clientsNow();
    const before = { messages: hub.stats.socketMessages, pages: hub.stats.replayPages };
    const hostile = await nonReadingSocket(stack.baseUrl, await stack.newUser("eve"));
    await waitFor(async () => (await clientsNow()) === baseline + 1, 5_000, "the socket to open");
    await hostile.write(floodFrames());
    await waitFor(async () => (await clientsNow()) === baseline, 10_000, "the server to close the flooding socket");
    // The burst (200) and the one over it; everything after was ignored.
    expect(hub.stats.socketMessages - before.messages).toBeLessThanOrEqual(205);
    expect(hub.stats.replayPages - before.pages).toBeLessThanOrEqual(5);
    hostile.close();
  });
});
