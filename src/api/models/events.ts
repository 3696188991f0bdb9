import { t } from "elysia";
import { EVENT_TYPE_NAMES } from "../../event-types";
import { JsonInteger } from "./common";

/** The event types come from src/event-types.ts; the string stays open for validation, the document shows the list. */
const EventType = t.String({ enum: [...EVENT_TYPE_NAMES], description: "what happened" });

const eventFields = {
  seq: JsonInteger({ description: "the event log's order; resume with after=seq" }),
  flowId: t.Optional(t.String()),
  jobId: t.Optional(t.String()),
  status: t.Optional(t.String({ description: "the job's or flow's new status" })),
  at: t.String({ format: "date-time" }),
  data: t.Optional(t.Unknown()),
};

export const EventSchema = t.Object({ ...eventFields, type: EventType }, { $id: "Event" });

export const EventPageSchema = t.Object(
  { items: t.Array(EventSchema), nextAfter: JsonInteger({ description: "pass as after for the next page" }) },
  { $id: "EventPage" },
);

/*
 * The socket's messages (GET /v1/ws). They are not validated with these schemas (the socket parses
 * its own frames); they describe the protocol in the OpenAPI document, under components.
 */
const target = {
  flowId: t.Optional(t.String({ description: "one flow's events" })),
  all: t.Optional(t.Literal(true, { description: "every event of this user" })),
};

export const socketClientMessages = {
  SocketSubscribe: t.Object(
    {
      op: t.Literal("subscribe"),
      ...target,
      after: t.Optional(JsonInteger({ minimum: 0, description: "replay stored events with a larger seq first, then live ones" })),
    },
    { description: "flowId or all: true" },
  ),
  SocketUnsubscribe: t.Object({ op: t.Literal("unsubscribe"), ...target }),
  SocketPing: t.Object({ op: t.Literal("ping") }),
};

export const socketServerMessages = {
  SocketEvent: t.Object(
    { type: t.Literal("event"), event: EventType, ...eventFields },
    { description: "an event: the event log's fields, with its type under `event`" },
  ),
  SocketSubscribed: t.Object({
    type: t.Literal("subscribed"),
    ...target,
    after: t.Optional(JsonInteger()),
    seq: t.Optional(JsonInteger()),
    note: t.Optional(t.String()),
  }),
  SocketUnsubscribed: t.Object({ type: t.Literal("unsubscribed"), ...target }),
  SocketPong: t.Object({ type: t.Literal("pong") }),
  SocketError: t.Object(
    {
      type: t.Literal("error"),
      code: t.String({
        description: "invalid_message, not_found, events_expired, too_many_subscriptions, rate_limited (then the socket closes), superseded, unavailable",
      }),
      message: t.String(),
      ...target,
    },
    { additionalProperties: true },
  ),
};
