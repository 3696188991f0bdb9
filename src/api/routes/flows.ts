import { Elysia, t } from "elysia";
import { LONG_POLL_MAX_S } from "../../services/waiters";
import type { FlowDeps } from "../../services/flows";
import { cancelFlow, createFlow, deleteFlow, getFlow, listUserFlows, retryFlow } from "../../services/flows";
import type { Authenticate } from "../../services/tokens";
import type { CreateFlowInput } from "../../services/flows";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { CreateFlowBody, FlowPageSchema, FlowStatus, FlowViewSchema } from "../models/flows";
import { IdempotencyHeaders, NoContent } from "../models/openapi";
import { QueryInteger, QueryNumber } from "../models/query";
import { DataFilter } from "../models/jobs";

export const flowRoutes = (deps: FlowDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/flows", detail: { tags: ["flows"] } })
    .use(authPlugin(deps.authenticate))
    .post(
      "",
      async ({ user, body, headers, set }) => {
        const { flow, replayed } = await createFlow(deps, user, body as CreateFlowInput, headers["idempotency-key"]);
        set.status = 201;
        if (replayed) set.headers["idempotent-replayed"] = "true";
        return flow;
      },
      {
        body: CreateFlowBody,
        headers: IdempotencyHeaders,
        response: { 201: FlowViewSchema, ...errorResponses(409, 413) },
        detail: { operationId: "createFlow", summary: "Create a flow (a tree of jobs); Idempotency-Key makes a repeat return the first answer" },
      },
    )
    .get("", ({ user, query }) => listUserFlows(deps, user, query), {
      query: t.Object({
        status: t.Optional(FlowStatus),
        name: t.Optional(t.String({ maxLength: 200, description: "flows whose name starts with this" })),
        data: t.Optional(DataFilter),
        definition: t.Optional(t.String({ maxLength: 128, description: "runs of this definition (any version)" })),
        scheduleId: t.Optional(t.String({ maxLength: 64, description: "flows this schedule's firings started" })),
        eventId: t.Optional(t.String({ maxLength: 64, description: "flows this published event's triggers started" })),
        since: t.Optional(t.String({ format: "date-time", maxLength: 64, description: "created at or after this instant" })),
        until: t.Optional(t.String({ format: "date-time", maxLength: 64, description: "created before this instant" })),
        limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })),
        cursor: t.Optional(t.String({ maxLength: 200 })),
      }),
      response: { 200: FlowPageSchema, ...errorResponses() },
      detail: { operationId: "listFlows", summary: "List flows, newest first (filters: status, name prefix, data containment; keyset pages: pass nextCursor as cursor)" },
    })
    .get("/:id", async ({ user, params, query }) => await getFlow(deps, user, params.id, query.wait ?? 0), {
      params: IdParams,
      query: t.Object({ wait: t.Optional(QueryNumber({ minimum: 0, maximum: LONG_POLL_MAX_S })) }),
      response: { 200: FlowViewSchema, ...errorResponses(404) },
      detail: { operationId: "getFlow", summary: "A flow with its job tree; ?wait=N answers as soon as it finishes or N seconds pass" },
    })
    .post("/:id/cancel", async ({ user, params }) => await cancelFlow(deps, user, params.id), {
      params: IdParams,
      response: { 200: FlowViewSchema, ...errorResponses(404, 409) },
      detail: { operationId: "cancelFlow", summary: "Cancel every unfinished job (409 if the flow already finished)" },
    })
    .post("/:id/retry", async ({ user, params }) => await retryFlow(deps, user, params.id), {
      params: IdParams,
      response: { 200: FlowViewSchema, ...errorResponses(404, 409) },
      detail: {
        operationId: "retryFlow",
        summary: "Run the failed jobs and the ancestors they failed (a graph: the failed and cancelled jobs) again; completed results are kept",
        description:
          "Only failed and cancelled jobs run again (under new BullMQ ids), with the ancestors they failed. A job still running, " +
          "parked (an http task waiting for its callback) or waiting is never run again: it keeps its attempt, its callback URL " +
          "and its result to come, and the re-run parent waits for it like for any child. 409 `flow_running` or `nothing_to_retry`.",
      },
    })
    .delete(
      "/:id",
      async ({ user, params, set }) => {
        await deleteFlow(deps, user, params.id);
        set.status = 204;
      },
      {
        params: IdParams,
        detail: {
          operationId: "deleteFlow",
          summary: "Delete a finished flow (409 while it runs)",
          description:
            "A failed flow's jobs still running, parked or waiting (siblings of the job that failed it) are stopped as a cancel " +
            "stops them and removed from Redis with every other job of the flow; their callback URLs answer 409 `job_finished`.",
          responses: NoContent("Deleted", 404, 409),
        },
      },
    );
