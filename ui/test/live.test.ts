import { describe, expect, test } from "bun:test";
import { LiveSocket, socketProtocols, socketUrl, type LiveEvent } from "../lib/live";

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
