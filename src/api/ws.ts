import { Elysia } from "elysia";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { findFlow } from "../db/queries/flows";
import { assertEventsKept, EventsExpired } from "../services/event-log";
import { flowTopic, userTopic, type Hub } from "../events/hub";
import type { Authenticate, AuthUser } from "../services/tokens";
import { bearerToken, protocolToken, SOCKET_PROTOCOL } from "./plugins/auth";
import { messageBucket, socketCounter } from "./socket-limits";
import { replayEvents } from "./socket-replay";

/** Client frames above this close the socket (1009): the protocol's messages are tiny. */
export const SOCKET_MAX_FRAME = 64 * 1024;

/** A replay reads its next page only while the socket has less than this queued (or a quarter of its limit). */
export const REPLAY_HIGH_WATER = 256 * 1024;

/** Close code for a socket that broke a limit or stopped reading (RFC 6455: policy violation). */
export const POLICY_CLOSE = 1008;

/** The subscribe being worked on: its lookups, then its replay. */
interface Active {
  key: string;
  req: Subscription;
  abort: AbortController;
  /** The seq the client has every event up to, once the replay sent something. */
  cursor?: number;
}

interface SocketState {
  user: AuthUser;
  all: boolean;
  flows: Set<string>;
  closed: boolean;
  takeMessage: () => boolean;
  /** Subscribes waiting their turn in arrival order, at most one per target ("all" or "f:<flowId>"). */
  queue: Map<string, Subscription>;
  active: Active | null;
  /** A subscribe is running (an aborted one too, until it returns: one log query per socket at a time). */
  working: boolean;
}

interface Socket {
  id: string;
  send(data: string): unknown;
  subscribe(topic: string): unknown;
  unsubscribe(topic: string): unknown;
  close(code?: number, reason?: string): unknown;
  raw: { getBufferedAmount(): number };
  data: unknown;
}

interface Subscription {
  op: "subscribe" | "unsubscribe";
  flowId?: string;
  all?: boolean;
  after?: number;
}
type Request = Subscription | { op: "ping" };

type SocketConfig = Pick<Config, "socketsPerUser" | "socketSubscriptions" | "socketMessageRate" | "socketBufferLimit">;

const targetKey = (req: Subscription) => (req.all ? "all" : `f:${req.flowId}`);
const target = (req: Subscription) => (req.all ? { all: true } : { flowId: req.flowId });

/**
 * GET /v1/ws. Authenticated before the upgrade. Subscribes run one at a time per socket, in order;
 * a subscription with `after` replays the log in pages, paced by what the socket has queued, up to
 * the hub's last published seq, then joins the live topic in the same tick — every later event is
 * published after the join — so events arrive in seq order, none missing, none twice. A subscribe
 * or unsubscribe for the same target replaces a subscribe still waiting or replaying (it stops at
 * once), and closing the socket stops everything: a flood of subscribes costs one query at a time.
 */
export function wsRoutes(deps: { db: Db; hub: Hub; authenticate: Authenticate; config: SocketConfig; sockets?: Map<string, unknown> }) {
  const { config, hub } = deps;
  const sockets = (deps.sockets ?? new Map()) as Map<string, SocketState>;
  const perUser = socketCounter(config.socketsPerUser);
  const highWater = Math.min(REPLAY_HIGH_WATER, Math.floor(config.socketBufferLimit / 4));
  hub.watchSubscriptions(() => {
    for (const s of sockets.values()) if (s.all || s.flows.size > 0) return true;
    return false;
  });
  // Returns nothing on purpose: Elysia sends whatever a message handler returns as one more frame.
  const send = (ws: Socket, msg: unknown): void => {
    ws.send(JSON.stringify(msg));
  };
  const error = (ws: Socket, code: string, message: string, extra: object = {}): void =>
    send(ws, { type: "error", code, message, ...extra });

  /** Drops a waiting or running subscribe for `key`, telling the client where it got to. */
  function supersede(ws: Socket, state: SocketState, key: string) {
    const queued = state.queue.get(key);
    const active = state.active?.key === key && !state.active.abort.signal.aborted ? state.active : null;
    if (queued) state.queue.delete(key);
    else if (active) active.abort.abort();
    const req = queued ?? active?.req;
    if (!req) return;
    const after = queued ? req.after : (active!.cursor ?? req.after);
    error(ws, "superseded", "A later subscribe or unsubscribe for the same target replaced this subscription; nothing more is sent for it.", {
      ...target(req),
      ...(after !== undefined ? { after } : {}),
    });
  }

  function stop(state: SocketState) {
    state.closed = true;
    state.queue.clear();
    state.active?.abort.abort();
  }

  /** Works through the socket's waiting subscribes, one at a time. */
  async function work(ws: Socket, state: SocketState): Promise<void> {
    if (state.working) return;
    state.working = true;
    hub.stats.subscribing++;
    try {
      for (let next = state.queue.entries().next(); !next.done && !state.closed; next = state.queue.entries().next()) {
        const [key, req] = next.value;
        state.queue.delete(key);
        const active: Active = { key, req, abort: new AbortController() };
        state.active = active;
        try {
          await subscribe(ws, state, active);
        } catch {
          if (!active.abort.signal.aborted) error(ws, "unavailable", "The event log could not be read; retry the subscription shortly.", target(req));
        } finally {
          state.active = null;
        }
      }
    } finally {
      state.working = false;
      hub.stats.subscribing--;
    }
  }

  async function subscribe(ws: Socket, state: SocketState, active: Active): Promise<void> {
    const { req, abort } = active;
    const signal = abort.signal;
    if (!req.all) {
      const flow = await findFlow(deps.db, state.user.userId, req.flowId!);
      if (signal.aborted) return;
      if (!flow) return error(ws, "not_found", `No flow with id '${req.flowId}' exists for this user.`, target(req));
      if (state.all || state.flows.has(req.flowId!))
        return send(ws, { type: "subscribed", flowId: req.flowId, seq: hub.lastSeq, note: "already subscribed" });
      if (state.flows.size >= config.socketSubscriptions) return tooMany(ws, req);
    } else if (state.all) {
      return send(ws, { type: "subscribed", all: true, seq: hub.lastSeq, note: "already subscribed" });
    }
    if (req.after !== undefined) {
      const expired = await assertEventsKept(deps.db, req.after).then(
        () => null,
        (err: unknown) => (err instanceof EventsExpired ? err : Promise.reject(err)),
      );
      if (signal.aborted) return;
      if (expired) return error(ws, expired.code, expired.message, target(req));
    }
    send(ws, { type: "subscribed", ...target(req), ...(req.after !== undefined ? { after: req.after } : {}) });
    const join = () => {
      if (req.all) {
        for (const f of state.flows) ws.unsubscribe(flowTopic(f));
        state.flows.clear();
        state.all = true;
        ws.subscribe(userTopic(state.user.userId));
      } else {
        state.flows.add(req.flowId!);
        ws.subscribe(flowTopic(req.flowId!));
      }
      hub.joined();
    };
    if (req.after === undefined) return join();
    const outcome = await replayEvents({
      db: deps.db,
      userId: state.user.userId,
      flowId: req.all ? undefined : req.flowId,
      after: req.after,
      lastSeq: () => hub.lastSeq,
      goLive: join,
      signal,
      send: (m) => ws.send(m),
      buffered: () => ws.raw.getBufferedAmount(),
      highWater,
      progress: (cursor) => (active.cursor = cursor),
      onPage: () => hub.stats.replayPages++,
      onWait: (waiting) => (hub.stats.replaysWaiting += waiting ? 1 : -1),
    });
    if (outcome.kind === "stalled") {
      stop(state);
      ws.close(POLICY_CLOSE, "the socket stopped reading during a replay; reconnect and resume with after");
    }
  }

  const tooMany = (ws: Socket, req: Subscription) =>
    error(ws, "too_many_subscriptions", `A socket holds at most ${config.socketSubscriptions} flow subscriptions (FLOWD_SOCKET_SUBSCRIPTIONS); unsubscribe some, subscribe to all, or open another socket.`, target(req));

  function enqueue(ws: Socket, state: SocketState, req: Subscription) {
    const key = targetKey(req);
    // Flows held or waiting, counted as they arrive: the queue can never outgrow the limit.
    if (!req.all && !state.flows.has(req.flowId!) && !state.queue.has(key) && state.flows.size + state.queue.size >= config.socketSubscriptions)
      return tooMany(ws, req);
    supersede(ws, state, key);
    state.queue.set(key, req);
    void work(ws, state);
  }

  function unsubscribe(ws: Socket, state: SocketState, req: Subscription) {
    supersede(ws, state, targetKey(req));
    if (req.all) {
      state.all = false;
      ws.unsubscribe(userTopic(state.user.userId));
    } else {
      state.flows.delete(req.flowId!);
      ws.unsubscribe(flowTopic(req.flowId!));
    }
    send(ws, { type: "unsubscribed", ...target(req) });
  }

  return new Elysia({ name: "ws" })
    .derive(async ({ request, status, set }) => {
      const fromProtocol = protocolToken(request);
      // A client that offered subprotocols must get one of them back, or the browser drops the socket.
      if (fromProtocol) set.headers["sec-websocket-protocol"] = SOCKET_PROTOCOL;
      const token = fromProtocol ?? bearerToken(request, true);
      const user = token ? await deps.authenticate(token) : null;
      if (!user)
        return status(401, {
          error: { code: "unauthorized", message: "Send a valid API token: 'Authorization: Bearer <token>', the subprotocols 'flowd, flowd.bearer.<token>' (browsers), or '?token='." },
        });
      if (!perUser.admits(user.userId))
        return status(429, {
          error: {
            code: "too_many_sockets",
            message: `This user has ${config.socketsPerUser} sockets open on this API process (FLOWD_SOCKETS_PER_USER); close one first.`,
          },
        });
      return { wsUser: user };
    })
    .ws("/v1/ws", {
      // A WebSocket is no OpenAPI operation (its method key would be 'ws'); the README documents it.
      detail: { hide: true },
      open(ws) {
        const user = (ws.data as { wsUser: AuthUser }).wsUser;
        // Upgrades that passed the early check together: the count at open decides.
        if (!perUser.open(user.userId)) return void ws.close(POLICY_CLOSE, "too many sockets for this user (FLOWD_SOCKETS_PER_USER)");
        sockets.set(ws.id, {
          user,
          all: false,
          flows: new Set(),
          closed: false,
          takeMessage: messageBucket(config.socketMessageRate),
          queue: new Map(),
          active: null,
          working: false,
        });
      },
      close(ws) {
        const state = sockets.get(ws.id);
        if (!state) return;
        sockets.delete(ws.id);
        stop(state);
        perUser.release(state.user.userId);
      },
      message(ws, raw): void {
        const socket = ws as unknown as Socket;
        const state = sockets.get(ws.id);
        if (!state || state.closed) return;
        hub.stats.socketMessages++;
        if (!state.takeMessage()) {
          error(socket, "rate_limited", `A socket may send ${config.socketMessageRate} messages per second (bursts of ${config.socketMessageRate * 2}; FLOWD_SOCKET_MESSAGE_RATE); closing.`);
          stop(state);
          return void socket.close(POLICY_CLOSE, "too many messages (FLOWD_SOCKET_MESSAGE_RATE)");
        }
        const req = parseRequest(raw);
        if (typeof req === "string") return error(socket, "invalid_message", req);
        if (req.op === "ping") send(socket, { type: "pong" });
        else if (req.op === "subscribe") enqueue(socket, state, req);
        else unsubscribe(socket, state, req);
      },
    });
}

/** Checks a client frame by hand: the protocol is small and every mistake deserves a precise answer. */
export function parseRequest(raw: unknown): Request | string {
  let msg = raw;
  if (typeof msg === "string") {
    try {
      msg = JSON.parse(msg);
    } catch {
      return "Messages must be JSON objects such as {\"op\":\"subscribe\",\"all\":true}.";
    }
  }
  if (!msg || typeof msg !== "object" || Array.isArray(msg)) return "Messages must be JSON objects with an 'op'.";
  const m = msg as Record<string, unknown>;
  if (m.op === "ping") return { op: "ping" };
  if (m.op !== "subscribe" && m.op !== "unsubscribe") return `Unknown op '${String(m.op)}'; use subscribe, unsubscribe or ping.`;
  const extra = Object.keys(m).filter((k) => !["op", "flowId", "all", "after"].includes(k));
  if (extra.length > 0) return `Unknown field '${extra[0]}'; a ${m.op} takes flowId or all, and after.`;
  const hasFlow = m.flowId !== undefined;
  const hasAll = m.all !== undefined;
  if (hasFlow === hasAll) return `A ${m.op} names exactly one of flowId (a flow id) or all (true).`;
  if (hasFlow && (typeof m.flowId !== "string" || m.flowId.length === 0 || m.flowId.length > 64)) return "flowId must be a flow id string.";
  if (hasAll && m.all !== true) return "all must be true.";
  if (m.after !== undefined) {
    if (m.op !== "subscribe") return "after is only for subscribe.";
    if (typeof m.after !== "number" || !Number.isSafeInteger(m.after) || m.after < 0) return "after must be a non-negative integer seq.";
  }
  return { op: m.op, ...(hasFlow ? { flowId: m.flowId as string } : { all: true }), ...(m.after !== undefined ? { after: m.after as number } : {}) };
}
