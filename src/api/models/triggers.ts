import { t } from "elysia";
import type { PublishAnswer } from "../../services/publish";
import type { PublishedView, TriggerView } from "../../services/triggers";
import { JsonInteger } from "./common";
import { QueryInteger } from "./query";

const Topic = t.String({ minLength: 1, maxLength: 128, description: "a topic name: lowercase letter or digit first, then up to 127 of a-z 0-9 _ . : -" });

export const CreateTriggerBody = t.Object(
  {
    topic: Topic,
    definition: t.String({ minLength: 1, maxLength: 128, description: "the definition each matching event runs" }),
    version: t.Optional(JsonInteger({ minimum: 1, description: "pin a version (default: the latest at each publish)" })),
    filter: t.Optional(
      t.Record(t.String(), t.Unknown(), {
        description:
          "a JSON object the payload must contain (Postgres jsonb containment, `@>`): every key with a value that matches, objects recursively, a filter array's elements each found in the payload's array",
      }),
    ),
  },
  { additionalProperties: false, $id: "CreateTrigger" },
);

export const TriggerSchema = t.Unsafe<TriggerView>(
  t.Object(
    {
      id: t.String(),
      topic: t.String(),
      definition: t.String(),
      version: t.Union([t.Null(), JsonInteger()]),
      filter: t.Union([t.Null(), t.Record(t.String(), t.Unknown())]),
      createdAt: t.String({ format: "date-time" }),
    },
    { $id: "Trigger" },
  ),
);
export const TriggerPageSchema = t.Object({ items: t.Array(TriggerSchema), nextCursor: t.Union([t.Null(), t.String()]) }, { $id: "TriggerPage" });

export const ListByTopicQuery = t.Object({
  topic: t.Optional(t.String({ maxLength: 128 })),
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});

export const PublishBody = t.Object(
  {
    topic: Topic,
    payload: t.Optional(t.Unknown({ description: "the runs' input (default {}); matched against the triggers' filters" })),
    id: t.Optional(
      t.String({ minLength: 1, maxLength: 200, description: "the event's id: a second publish with the same id (kept 7 days) starts nothing new" }),
    ),
  },
  { additionalProperties: false, $id: "Publish" },
);

const Run = t.Object({ triggerId: t.String(), definition: t.String(), version: JsonInteger(), flowId: t.String() });
export const PublishAnswerSchema = t.Unsafe<PublishAnswer>(
  t.Object(
    {
      eventId: t.String({ description: "the stored event (GET /v1/published); the flows carry it as eventId" }),
      id: t.String({ description: "the id sent, or eventId" }),
      duplicate: t.Boolean({ description: "this id was published before: nothing new started" }),
      started: t.Array(Run, { description: "runs this publish started" }),
      alreadyStarted: t.Array(Run, { description: "runs the first publish of this id started" }),
      skipped: t.Array(
        t.Object({ triggerId: t.String(), definition: t.String(), code: t.String(), message: t.String() }),
        { description: "matching triggers that started nothing: the payload failed the version's input schema (invalid_input), or the definition was deleted (not_found)" },
      ),
    },
    { $id: "PublishAnswer" },
  ),
);

export const PublishedSchema = t.Unsafe<PublishedView>(
  t.Object(
    {
      id: t.String(),
      eventKey: t.String(),
      topic: t.String(),
      payload: t.Unknown(),
      matched: t.Array(t.Object({ triggerId: t.String(), definition: t.String(), version: t.Union([t.Null(), JsonInteger()]) })),
      createdAt: t.String({ format: "date-time" }),
    },
    { $id: "PublishedEvent" },
  ),
);
export const PublishedPageSchema = t.Object({ items: t.Array(PublishedSchema), nextCursor: t.Union([t.Null(), t.String()]) }, { $id: "PublishedPage" });
