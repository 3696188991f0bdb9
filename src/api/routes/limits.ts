import { Elysia } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { listLimits, putLimit } from "../../services/limits";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { errorResponses } from "../models/errors";
import { LimitListQuery, LimitPageSchema, LimitParams, LimitViewSchema, PutLimitBody } from "../models/limits";

/** Per-key limits (concurrency, rate) stored once per key and changed at run time. */
export const limitRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/limits", detail: { tags: ["limits"] } })
    .use(authPlugin(deps.authenticate))
    .put("/:key", ({ user, params, body }) => putLimit(deps, user, params.key, body), {
      params: LimitParams,
      body: PutLimitBody,
      response: { 200: LimitViewSchema, ...errorResponses() },
      detail: { operationId: "putLimit", summary: "Set a key's concurrency and rate limits; waiting jobs of the key follow at once" },
    })
    .get("", ({ user, query }) => listLimits(deps, user, { after: query.after, limit: query.limit === undefined ? undefined : Number(query.limit) }), {
      query: LimitListQuery,
      response: { 200: LimitPageSchema, ...errorResponses() },
      detail: { operationId: "listLimits", summary: "The user's limit keys by name, with running and waiting jobs per key" },
    });
