import { describe, expect, test } from "bun:test";
import { LiveSocket, SnapshotGate, socketProtocols, socketUrl, type LiveEvent } from "../lib/live";

/** A stand-in for the browser's WebSocket: records what the page sends, lets the test speak for the server. */
class FakeSocket {
  readyState = 0;
  sent: any[] = [];
  onopen: ((ev: any) => void) | null = null;
  onclose: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: any }) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  constructor(readonly url: string) {}
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.drop();
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  server(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({});
  }
}

const setup = () => {
  const sockets: FakeSocket[] = [];
  const timers: (() => void)[] = [];
  const realSetTimeout = globalThis.setTimeout;
  // Reconnects wait on a timer: run them when the test says so.
  globalThis.setTimeout = ((fn: () => void) => (timers.push(fn), 0)) as unknown as typeof setTimeout;
  const live = new LiveSocket(
    () => "ws://127.0.0.1/v1/ws",
    () => "t",
    (u, protocols) => {
      expect(protocols).toEqual(["flowd", "flowd.bearer.t"]);
      const s = new FakeSocket(u);
      sockets.push(s);
      return s as never;
    },
    () => 1,
  );
  return { live, sockets, timers, restore: () => (globalThis.setTimeout = realSetTimeout) };
};

const ev = (seq: number, flowId = "f1", extra: Partial<LiveEvent> = {}): LiveEvent => ({
  type: "event",
  event: "job.updated",
  seq,
  flowId,
  jobId: "j1",
  status: "active",
  at: new Date().toISOString(),
  ...extra,
});

describe("LiveSocket", () => {
  test("subscribes once open, delivers in order, resumes with after, skips repeats", () => {
    const { live, sockets, timers, restore } = setup();
    try {
      const states: string[] = [];
      live.onState((s) => states.push(s));
      const got: number[] = [];
      const subscribed: boolean[] = [];
      live.subscribe({ flowId: "f1" }, { onEvent: (e) => got.push(e.seq), onSubscribed: (r) => subscribed.push(r) });
      const first = sockets[0]!;
      expect(first.sent).toEqual([]);
      first.open();
      expect(first.sent).toEqual([{ op: "subscribe", flowId: "f1" }]);
      first.server({ type: "subscribed", flowId: "f1" });
      first.server(ev(5));
      first.server(ev(6));
      first.server(ev(7, "other"));
      expect(got).toEqual([5, 6]);
      first.drop();
      expect(live.state).toBe("reconnecting");
      timers.shift()!();
      const second = sockets[1]!;
      second.open();
      expect(second.sent).toEqual([{ op: "subscribe", flowId: "f1", after: 6 }]);
      second.server({ type: "subscribed", flowId: "f1", after: 6 });
      second.server(ev(6));
      second.server(ev(8));
      expect(got).toEqual([5, 6, 8]);
      expect(subscribed).toEqual([false, true]);
      expect(states).toEqual(["connecting", "live", "reconnecting", "live"]);
    } finally {
      restore();
    }
  });

  test("a target with no event yet, or past retention, is told to load afresh", () => {
    const { live, sockets, timers, restore } = setup();
    try {
      const subscribed: boolean[] = [];
      live.subscribe({ all: true }, { onEvent: () => {}, onSubscribed: (r) => subscribed.push(r) });
      sockets[0]!.open();
      sockets[0]!.server({ type: "subscribed", all: true });
      sockets[0]!.drop();
      timers.shift()!();
      sockets[1]!.open();
      expect(sockets[1]!.sent).toEqual([{ op: "subscribe", all: true }]);
      sockets[1]!.server({ type: "subscribed", all: true });
      expect(subscribed).toEqual([false, false]);
      sockets[1]!.server(ev(3, "f9"));
      sockets[1]!.drop();
      timers.shift()!();
      sockets[2]!.open();
      expect(sockets[2]!.sent).toEqual([{ op: "subscribe", all: true, after: 3 }]);
      sockets[2]!.server({ type: "error", code: "events_expired", all: true, message: "gone" });
      expect(sockets[2]!.sent[1]).toEqual({ op: "subscribe", all: true });
      sockets[2]!.server({ type: "subscribed", all: true });
      expect(subscribed).toEqual([false, false, false]);
    } finally {
      restore();
    }
  });

  test("the last subscriber leaving unsubscribes; close stops reconnecting", () => {
    const { live, sockets, timers, restore } = setup();
    try {
      sockets[0]!.open();
      const off = live.subscribe({ flowId: "f2" }, { onEvent: () => {} });
      off();
      expect(sockets[0]!.sent).toEqual([{ op: "subscribe", flowId: "f2" }, { op: "unsubscribe", flowId: "f2" }]);
      live.close();
      expect(live.state).toBe("offline");
      expect(timers).toHaveLength(0);
      expect(sockets).toHaveLength(1);
    } finally {
      restore();
    }
  });

  test("socketUrl follows the page's scheme and never holds the token", () => {
    expect(socketUrl({ protocol: "https:", host: "x:1" })).toBe("wss://x:1/v1/ws");
    expect(socketUrl({ protocol: "http:", host: "127.0.0.1:3000" })).toBe("ws://127.0.0.1:3000/v1/ws");
    expect(socketProtocols("flowd_abc-_9")).toEqual(["flowd", "flowd.bearer.flowd_abc-_9"]);
  });
});

describe("SnapshotGate", () => {
  const ev = (seq: number, jobId = "a", status = "active"): LiveEvent => ({ type: "event", event: "job.updated", seq, jobId, status, flowId: "f", at: "" });
  /** A load whose answer the test releases by hand, in any order. */
  function loads() {
    const pending: (() => void)[] = [];
    let started = 0;
    return {
      load: () => {
        started++;
        return new Promise<void>((r) => pending.push(r));
      },
      get started() {
        return started;
      },
      answer: (i: number) => pending[i]!(),
    };
  }
  const tick = () => new Promise((r) => setTimeout(r, 0));

  test("holds events until the first snapshot is in, then hands them over in order", async () => {
    const l = loads();
    const got: number[][] = [];
    const gate = new SnapshotGate(l.load, (es) => got.push(es.map((e) => e.seq)));
    gate.event(ev(1));
    const done = gate.requestLoad();
    await tick();
    gate.event(ev(2));
    expect(got).toEqual([]);
    l.answer(0);
    await done;
    expect(got).toEqual([[1, 2]]);
    gate.event(ev(3));
    expect(got).toEqual([[1, 2], [3]]);
  });

  test("a load asked for during a load runs after it, never beside it, and events wait for both", async () => {
    // The race it closes: two GETs out at once answer out of order, the older snapshot lands last
    // and wipes out the events applied since (a node stuck at "active" under a completed flow).
    const l = loads();
    const got: number[] = [];
    const gate = new SnapshotGate(l.load, (es) => got.push(...es.map((e) => e.seq)));
    const first = gate.requestLoad();
    await tick();
    gate.event(ev(1));
    void gate.requestLoad();
    void gate.requestLoad();
    gate.event(ev(2));
    expect(l.started).toBe(1);
    l.answer(0);
    await tick();
    expect(l.started).toBe(2); // the asks during the first load coalesce into one more
    expect(got).toEqual([]);
    gate.event(ev(3));
    l.answer(1);
    await first;
    await tick();
    expect(got).toEqual([1, 2, 3]);
    expect(gate.open).toBe(true);
  });

  test("an action waits for a load under way; events during it are held and handed over after its answer", async () => {
    const l = loads();
    const got: number[] = [];
    const order: string[] = [];
    const gate = new SnapshotGate(async () => {
      await l.load();
      order.push("load");
    }, (es) => got.push(...es.map((e) => e.seq)));
    void gate.requestLoad();
    await tick();
    let release!: () => void;
    const action = gate.exclusive(async () => {
      order.push("action out");
      await new Promise<void>((r) => (release = r));
      order.push("answer");
      return 42;
    });
    await tick();
    expect(order).toEqual([]);
    l.answer(0);
    await tick();
    await tick();
    expect(order).toEqual(["load", "action out"]);
    gate.event(ev(5));
    expect(got).toEqual([]);
    release();
    expect(await action).toBe(42);
    expect(got).toEqual([5]);
  });

  test("a failed load still opens the gate; a failed action rejects to its caller; stop drops what is held", async () => {
    const got: number[] = [];
    const gate = new SnapshotGate(() => Promise.reject(new Error("down")), (es) => got.push(...es.map((e) => e.seq)));
    gate.event(ev(1));
    await gate.requestLoad();
    expect(got).toEqual([1]);
    await expect(gate.exclusive(() => Promise.reject(new Error("refused")))).rejects.toThrow("refused");
    await tick();
    gate.stop();
    gate.event(ev(2));
    expect(got).toEqual([1]);
  });
});
