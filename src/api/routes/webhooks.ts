import { Elysia } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import type { Authenticate } from "../../services/tokens";
import { createWebhook, deleteWebhook, listUserWebhooks, webhookDeliveries } from "../../services/webhooks";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { NoContent } from "../models/openapi";
import { CreatedWebhookSchema, CreateWebhookBody, DeliveriesQuery, DeliveryPageSchema, WebhookListQuery, WebhookPageSchema } from "../models/webhooks";

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
        body: CreateWebhookBody,
        response: { 201: CreatedWebhookSchema, ...errorResponses(409, 413) },
        detail: {
          operationId: "createWebhook",
          summary: "Register an endpoint; deliveries are signed with the returned secret (Standard Webhooks)",
          description:
            "409 `webhook_exists` when this user already has a webhook with the same URL and the same set of event types; " +
            "409 `webhook_limit` when the user already has FLOWD_MAX_WEBHOOKS_PER_USER webhooks (default 100).",
        },
      },
    )
    .get("", async ({ user, query }) => await listUserWebhooks(deps, user, query), {
      query: WebhookListQuery,
      response: { 200: WebhookPageSchema, ...errorResponses() },
      detail: { operationId: "listWebhooks", summary: "List endpoints (secrets are never shown again)" },
    })
    .delete(
      "/:id",
      async ({ user, params, set }) => {
        await deleteWebhook(deps, user, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: { operationId: "deleteWebhook", summary: "Remove an endpoint", responses: NoContent("Removed", 404) } },
    )
    .get("/:id/deliveries", async ({ user, params, query }) => await webhookDeliveries(deps, user, params.id, query), {
      params: IdParams,
      query: DeliveriesQuery,
      response: { 200: DeliveryPageSchema, ...errorResponses(404) },
      detail: { operationId: "listWebhookDeliveries", summary: "Delivery attempts, newest first (pass nextBefore as before for the next page)" },
    });
