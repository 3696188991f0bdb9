import { Elysia } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { publish, type PublishInput } from "../../services/publish";
import { createTrigger, deleteTrigger, listUserPublished, listUserTriggers, type TriggerInput } from "../../services/triggers";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { NoContent } from "../models/openapi";
import { CreateTriggerBody, ListByTopicQuery, PublishAnswerSchema, PublishBody, PublishedPageSchema, TriggerPageSchema, TriggerSchema } from "../models/triggers";

export const triggerRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1", detail: { tags: ["definitions"] } })
    .use(authPlugin(deps.authenticate))
    .post(
      "/triggers",
      async ({ user, body, set }) => {
        const trigger = await createTrigger(deps, user, body as TriggerInput);
        set.status = 201;
        return trigger;
      },
      {
        body: CreateTriggerBody,
        response: { 201: TriggerSchema, ...errorResponses(404, 409, 413) },
        detail: {
          operationId: "createTrigger",
          summary: "Run a definition for every event published on a topic whose payload contains the filter",
          description: "404 when the definition (or the pinned version) does not exist; 409 `too_many_triggers` past 100 triggers on one topic.",
        },
      },
    )
    .get("/triggers", ({ user, query }) => listUserTriggers(deps, user, query), {
      query: ListByTopicQuery,
      response: { 200: TriggerPageSchema, ...errorResponses() },
      detail: { operationId: "listTriggers", summary: "List triggers, newest first (optionally of one topic)" },
    })
    .delete(
      "/triggers/:id",
      async ({ user, params, set }) => {
        await deleteTrigger(deps, user, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: { operationId: "deleteTrigger", summary: "Remove a trigger; runs it started go on", responses: NoContent("Removed", 404) } },
    )
    .post("/publish", ({ user, body }) => publish(deps, user, body as PublishInput), {
      body: PublishBody,
      response: { 200: PublishAnswerSchema, ...errorResponses(413) },
      detail: {
        operationId: "publish",
        summary: "Publish an event: one run per matching trigger, the payload as its input; a repeated id starts nothing new",
        description:
          "The answer lists the runs started and the triggers skipped (the payload failed the version's input schema, or the definition was deleted). " +
          "The event is kept 7 days with the triggers it matched (GET /v1/published); within them a publish with the same id starts nothing new and answers `duplicate: true`.",
      },
    })
    .get("/published", ({ user, query }) => listUserPublished(deps, user, query), {
      query: ListByTopicQuery,
      response: { 200: PublishedPageSchema, ...errorResponses() },
      detail: { operationId: "listPublished", summary: "Published events, newest first: topic, payload, the triggers they matched (their runs: GET /v1/flows?eventId=)" },
    });
