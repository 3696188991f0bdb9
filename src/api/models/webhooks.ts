import { t } from "elysia";
import { JsonInteger } from "./common";
import { MAX_SAFE, QueryInteger } from "./query";

const webhookFields = {
  id: t.String(),
  url: t.String(),
  events: t.Array(t.String()),
  description: t.Union([t.Null(), t.String()]),
  disabled: t.Boolean(),
  disabledReason: t.Union([t.Null(), t.String()]),
  createdAt: t.String(),
};

export const CreateWebhookBody = t.Object(
  {
    url: t.String({ minLength: 1, maxLength: 2048, description: "http(s); private addresses refused unless FLOWD_ALLOW_PRIVATE_URLS" }),
    events: t.Array(t.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 16, description: 'event types or ["*"]' }),
    description: t.Optional(t.String({ maxLength: 500 })),
  },
  { additionalProperties: false, $id: "CreateWebhook" },
);

export const WebhookSchema = t.Object(webhookFields, { $id: "Webhook" });

export const CreatedWebhookSchema = t.Object(
  { ...webhookFields, secret: t.String({ description: "shown once: whsec_ + base64" }) },
  { $id: "CreatedWebhook" },
);

export const WebhookPageSchema = t.Object(
  { items: t.Array(WebhookSchema), nextCursor: t.Union([t.Null(), t.String()]) },
  { $id: "WebhookPage" },
);

export const WebhookListQuery = t.Object({
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});

export const DeliveriesQuery = t.Object({
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 200 })),
  before: t.Optional(QueryInteger({ minimum: 1, maximum: MAX_SAFE })),
});

export const DeliveryPageSchema = t.Object(
  {
    items: t.Array(
      t.Object({
        id: JsonInteger(),
        eventSeq: JsonInteger(),
        attempt: JsonInteger(),
        statusCode: t.Union([t.Null(), JsonInteger()], { description: "the receiver's HTTP status; null when none answered" }),
        durationMs: JsonInteger(),
        error: t.Union([t.Null(), t.String()]),
        at: t.String({ format: "date-time" }),
      }),
    ),
    nextBefore: t.Union([t.Null(), JsonInteger()], { description: "pass as before for the next page; null on the last" }),
  },
  { $id: "DeliveryPage" },
);
