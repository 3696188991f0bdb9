import { Elysia } from "elysia";
import type { Db } from "../db/client";
import { userEvents } from "../db/queries/events";
import { findFlow } from "../db/queries/flows";
import { isEventsExpired } from "../db/queries/event-log";
import { flowTopic, toWireMessage, userTopic, type Hub } from "../events/hub";
import type { Authenticate, AuthUser } from "../services/tokens";
import { bearerToken } from "./plugins/auth";

/** Client frames above this close the socket (1009): the protocol's messages are tiny. */
export const SOCKET_MAX_FRAME = 64 * 1024;

interface SocketState {
  user: AuthUser;
  all: boolean;
  flows: Set<string>;
}

interface Socket {
  id: string;
  send(data: string): unknown;
  subscribe(topic: string): unknown;
  unsubscribe(topic: string): unknown;
  close(code?: number, reason?: string): unknown;
  data: unknown;
}

interface Subscription {
  op: "subscribe" | "unsubscribe";
  flowId?: string;
  all?: boolean;
  after?: number;
}
type Request = Subscription | { op: "ping" };

const REPLAY_PAGE = 500;

/**
 * GET /v1/ws. Authenticated before the upgrade. A subscription with `after` replays the log in
 * pages up to the hub's last published seq, then joins the live topic in the same tick — every
 * later event is published after the join — so events arrive in seq order, none missing, none twice.
 */
export function wsRoutes(deps: { db: Db; hub: Hub; authenticate: Authenticate; sockets?: Map<string, unknown> }) {
  const sockets = (deps.sockets ?? new Map()) as Map<string, SocketState>;
  deps.hub.watchSubscriptions(() => {
    for (const s of sockets.values()) if (s.all || s.flows.size > 0) return true;
    return false;
  });
  // Returns nothing on purpose: Elysia sends whatever a message handler returns as one more frame.
  const send = (ws: Socket, msg: unknown): void => {
    ws.send(JSON.stringify(msg));
  };
  const error = (ws: Socket, code: string, message: string): void => send(ws, { type: "error", code, message });

  async function subscribe(ws: Socket, state: SocketState, req: Subscription): Promise<void> {
    const target = req.all ? "all" : req.flowId!;
    if (!req.all) {
      const flow = await findFlow(deps.db, state.user.userId, req.flowId!);
      if (!flow) return error(ws, "not_found", `No flow with id '${req.flowId}' exists for this user.`);
      if (state.all || state.flows.has(req.flowId!))
        return send(ws, { type: "subscribed", flowId: req.flowId, seq: deps.hub.lastSeq, note: "already subscribed" });
    } else if (state.all) {
      return send(ws, { type: "subscribed", all: true, seq: deps.hub.lastSeq, note: "already subscribed" });
    }
    if (req.after !== undefined && (await isEventsExpired(deps.db, req.after)))
      return error(ws, "events_expired", `Events after seq ${req.after} are no longer kept; reload the current state with GET and subscribe without 'after'.`);
    send(ws, { type: "subscribed", ...(req.all ? { all: true } : { flowId: req.flowId }), ...(req.after !== undefined ? { after: req.after } : {}) });
    let cursor = req.after;
    if (cursor !== undefined) {
      for (;;) {
        const upTo = deps.hub.lastSeq;
        const page = await userEvents(deps.db, {
          userId: state.user.userId,
          after: cursor,
          upTo,
          flowId: req.all ? undefined : req.flowId,
          limit: REPLAY_PAGE,
        });
        for (const e of page) ws.send(toWireMessage(e));
        if (!sockets.has(ws.id)) return; // closed while replaying
        if (page.length === REPLAY_PAGE) cursor = page[page.length - 1]!.seq;
        else if (deps.hub.lastSeq === upTo) break; // nothing newer was published meanwhile: join now, same tick
        else cursor = upTo;
      }
    }
    if (req.all) {
      for (const f of state.flows) ws.unsubscribe(flowTopic(f));
      state.flows.clear();
      state.all = true;
      ws.subscribe(userTopic(state.user.userId));
    } else {
      state.flows.add(target);
      ws.subscribe(flowTopic(target));
    }
    deps.hub.joined();
  }

  function unsubscribe(ws: Socket, state: SocketState, req: Subscription) {
    if (req.all) {
      state.all = false;
      ws.unsubscribe(userTopic(state.user.userId));
    } else {
      state.flows.delete(req.flowId!);
      ws.unsubscribe(flowTopic(req.flowId!));
    }
    send(ws, { type: "unsubscribed", ...(req.all ? { all: true } : { flowId: req.flowId }) });
  }

  return new Elysia({ name: "ws" })
    .derive(async ({ request, status }) => {
      const token = bearerToken(request, true);
      const user = token ? await deps.authenticate(token) : null;
      if (!user)
        return status(401, {
          error: { code: "unauthorized", message: "Send a valid API token in 'Authorization: Bearer <token>' or '?token='." },
        });
      return { wsUser: user };
    })
    .ws("/v1/ws", {
      // A WebSocket is no OpenAPI operation (its method key would be 'ws'); the README documents it.
      detail: { hide: true },
      open(ws) {
        sockets.set(ws.id, { user: (ws.data as { wsUser: AuthUser }).wsUser, all: false, flows: new Set() });
      },
      close(ws) {
        sockets.delete(ws.id);
      },
      async message(ws, raw): Promise<void> {
        const socket = ws as unknown as Socket;
        const state = sockets.get(ws.id);
        if (!state) return;
        const req = parseRequest(raw);
        if (typeof req === "string") return error(socket, "invalid_message", req);
        try {
          if (req.op === "ping") send(socket, { type: "pong" });
          else if (req.op === "subscribe") await subscribe(socket, state, req);
          else unsubscribe(socket, state, req);
        } catch {
          error(socket, "unavailable", "The event log could not be read; retry the subscription shortly.");
        }
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
