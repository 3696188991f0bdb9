import { Elysia, t } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import type { Authenticate } from "../../services/tokens";
import { createWebhook, deleteWebhook, listUserWebhooks, webhookDeliveries } from "../../services/webhooks";
import { authPlugin } from "../plugins/auth";
import { ErrorSchema } from "../models/errors";
import { IdParams } from "../models/flows";
import { MAX_SAFE, QueryInteger } from "../models/query";

const errors = { 400: ErrorSchema, 401: ErrorSchema, 404: ErrorSchema, 413: ErrorSchema, 503: ErrorSchema };

const WebhookFields = {
  id: t.String(),
  url: t.String(),
  events: t.Array(t.String()),
  description: t.Union([t.Null(), t.String()]),
  disabled: t.Boolean(),
  disabledReason: t.Union([t.Null(), t.String()]),
  createdAt: t.String(),
};

export const webhookRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/webhooks", detail: { tags: ["webhooks"] } })
    .use(authPlugin(deps.authenticate))
    .post(
      "",
      async ({ user, body, set }) => {
        const webhook = await createWebhook(deps, user, body);
        set.status = 201;
        return webhook;
      },
      {
        body: t.Object(
          {
            url: t.String({ minLength: 1, maxLength: 2048, description: "http(s); private addresses refused unless FLOWD_ALLOW_PRIVATE_URLS" }),
            events: t.Array(t.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 16, description: 'event types or ["*"]' }),
            description: t.Optional(t.String({ maxLength: 500 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: t.Object({ ...WebhookFields, secret: t.String({ description: "shown once: whsec_ + base64" }) }), ...errors },
        detail: { summary: "Register an endpoint; deliveries are signed with the returned secret (Standard Webhooks)" },
      },
    )
    .get("", async ({ user, query }) => await listUserWebhooks(deps, user, query), {
      query: t.Object({ limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })), cursor: t.Optional(t.String({ maxLength: 200 })) }),
      response: { 200: t.Object({ items: t.Array(t.Object(WebhookFields)), nextCursor: t.Union([t.Null(), t.String()]) }), ...errors },
      detail: { summary: "List endpoints (secrets are never shown again)" },
    })
    .delete(
      "/:id",
      async ({ user, params, set }) => {
        await deleteWebhook(deps, user, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: { summary: "Remove an endpoint" } },
    )
    .get("/:id/deliveries", async ({ user, params, query }) => await webhookDeliveries(deps, user, params.id, query), {
      params: IdParams,
      query: t.Object({ limit: t.Optional(QueryInteger({ minimum: 1, maximum: 200 })), before: t.Optional(QueryInteger({ minimum: 1, maximum: MAX_SAFE })) }),
      detail: { summary: "Delivery attempts, newest first (pass nextBefore as before for the next page)" },
    });
