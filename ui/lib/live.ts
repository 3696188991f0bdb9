/**
 * The one socket a signed-in page holds to /v1/ws. Pages subscribe to a target (a flow, or `all`
 * of the user's events) and get its events in seq order. After a drop it reconnects (backing off)
 * and resubscribes each target with `after` = the last seq it delivered, so nothing is missed or
 * repeated; a target that had no event yet, or whose `after` is past retention (`events_expired`),
 * is told to load afresh (`onSubscribed(false)`). No polling: the server pushes, the page waits.
 */
export interface LiveEvent {
  type: "event";
  event: string;
  seq: number;
  flowId?: string;
  jobId?: string;
  status?: string;
  at: string;
  data?: any;
}
export type Target = { flowId: string } | { all: true };
export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

export interface Subscriber {
  onEvent(e: LiveEvent): void;
  /** The subscription is in place; `resumed` false means "load the present over HTTP now". */
  onSubscribed?(resumed: boolean): void;
}

interface Subscription {
  target: Target;
  subscribers: Set<Subscriber>;
  /** The last seq delivered for this target, 0 when none yet. */
  after: number;
}

type SocketLike = Pick<WebSocket, "send" | "close" | "readyState"> & {
  onopen: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onerror: ((ev: any) => void) | null;
};

export const keyOf = (t: Target) => ("all" in t ? "all" : `flow:${t.flowId}`);

export class LiveSocket {
  state: ConnectionState = "connecting";
  private socket: SocketLike | null = null;
  private subs = new Map<string, Subscription>();
  private stateListeners = new Set<(s: ConnectionState) => void>();
  private retries = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private readonly url: () => string,
    /** The token, sent as a subprotocol (`flowd.bearer.<token>`), never in the URL. */
    private readonly token: () => string,
    private readonly open: (url: string, protocols: string[]) => SocketLike = (u, p) => new WebSocket(u, p) as unknown as SocketLike,
    private readonly delay: (attempt: number) => number = (n) => Math.min(10_000, 500 * 2 ** n) * (0.8 + Math.random() * 0.4),
  ) {
    this.connect();
  }

  onState(fn: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  subscribe(target: Target, subscriber: Subscriber): () => void {
    const key = keyOf(target);
    let sub = this.subs.get(key);
    if (!sub) {
      sub = { target, subscribers: new Set(), after: 0 };
      this.subs.set(key, sub);
      sub.subscribers.add(subscriber);
      if (this.state === "live") this.send({ op: "subscribe", ...target });
    } else {
      sub.subscribers.add(subscriber);
      // Already subscribed: this one starts from the present too.
      if (this.state === "live") subscriber.onSubscribed?.(false);
    }
    return () => {
      const s = this.subs.get(key);
      if (!s) return;
      s.subscribers.delete(subscriber);
      if (s.subscribers.size === 0) {
        this.subs.delete(key);
        if (this.state === "live") this.send({ op: "unsubscribe", ...target });
      }
    };
  }

  close() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.close(1000, "signed out");
    this.setState("offline");
  }

  private setState(s: ConnectionState) {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.stateListeners) fn(s);
  }

  private send(msg: unknown) {
    if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify(msg));
  }

  private connect() {
    if (this.stopped) return;
    const ws = this.open(this.url(), socketProtocols(this.token()));
    this.socket = ws;
    ws.onopen = () => {
      this.retries = 0;
      this.setState("live");
      for (const sub of this.subs.values())
        this.send({ op: "subscribe", ...sub.target, ...(sub.after > 0 ? { after: sub.after } : {}) });
    };
    ws.onmessage = (ev) => this.handle(typeof ev.data === "string" ? ev.data : String(ev.data));
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.socket = null;
      if (this.stopped) return;
      this.setState("reconnecting");
      this.timer = setTimeout(() => this.connect(), this.delay(this.retries++));
    };
    ws.onerror = () => {};
  }

  private handle(text: string) {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.type === "event") return this.deliver(msg as LiveEvent);
    const key = msg.all ? "all" : msg.flowId ? `flow:${msg.flowId}` : null;
    const sub = key ? this.subs.get(key) : undefined;
    if (!sub) return;
    if (msg.type === "subscribed") {
      const resumed = msg.after !== undefined && msg.after > 0 && sub.after > 0;
      for (const s of sub.subscribers) s.onSubscribed?.(resumed);
    } else if (msg.type === "error" && msg.code === "events_expired") {
      // The log no longer holds what followed `after`: start from the present.
      sub.after = 0;
      this.send({ op: "subscribe", ...sub.target });
    }
  }

  private deliver(e: LiveEvent) {
    for (const sub of this.subs.values()) {
      const matches = "all" in sub.target ? true : sub.target.flowId === e.flowId;
      if (!matches || e.seq <= sub.after) continue;
      sub.after = e.seq;
      for (const s of sub.subscribers) s.onEvent(e);
    }
  }
}

/** The socket URL for this page's origin. The token is not in it: it goes as a subprotocol (socketProtocols). */
export const socketUrl = (loc: { protocol: string; host: string } = location) => `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/v1/ws`;

/** A browser cannot set headers on a WebSocket; the API reads the token from the offered subprotocols and selects `flowd`. */
export const socketProtocols = (token: string) => ["flowd", `flowd.bearer.${token}`];

/**
 * Orders a page's snapshots (a load over HTTP, an action's answer) with its live events, so a
 * snapshot never overwrites newer event data: snapshots run one at a time, in order; every event
 * that arrives while one is under way (or before the first is in) is held and handed over after
 * it, in order. A load asked for while one is under way runs again once it ends (its answer may
 * predate what the caller saw), instead of racing it: two GETs answering out of order would let
 * the older snapshot land last. Held events may be older than the snapshot that follows them;
 * applied in seq order after it, each job still ends with its newest state.
 */
export class SnapshotGate {
  private running: Promise<void> | null = null;
  private reload = false;
  private held: LiveEvent[] = [];
  private started = false;
  private stopped = false;

  constructor(
    private readonly load: () => Promise<void>,
    private readonly deliver: (events: LiveEvent[]) => void,
  ) {}

  /** A load or an action is under way. */
  get busy() {
    return this.running !== null;
  }

  /** True once a snapshot is in and none is under way: events go straight through. */
  get open() {
    return this.started && !this.running;
  }

  event(e: LiveEvent) {
    if (this.stopped) return;
    if (this.open) this.deliver([e]);
    else this.held.push(e);
  }

  /** Loads afresh; while a load runs, asks for one more after it (they never overlap). */
  requestLoad(): Promise<void> {
    if (this.running) {
      this.reload = true;
      return this.running;
    }
    return this.run(this.load).catch(() => {});
  }

  /** Runs a task that replaces what the page shows (an action's answer) between loads, events held meanwhile. */
  async exclusive<T>(task: () => Promise<T>): Promise<T> {
    while (this.running) await this.running.catch(() => {});
    let out!: T;
    await this.run(async () => {
      out = await task();
    });
    return out;
  }

  stop() {
    this.stopped = true;
    this.held = [];
  }

  private run(task: () => Promise<void>): Promise<void> {
    const go = async () => {
      try {
        await task();
        while (this.reload && !this.stopped) {
          this.reload = false;
          await this.load();
        }
      } finally {
        this.reload = false;
        this.started = true;
        this.running = null;
        const after = this.held;
        this.held = [];
        if (after.length && !this.stopped) this.deliver(after);
      }
    };
    // Started a tick later, so `running` is set before the task can end (even by a synchronous throw).
    const p = Promise.resolve().then(go);
    this.running = p;
    return p;
  }
}
