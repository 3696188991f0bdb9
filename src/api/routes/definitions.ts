import { Elysia, t } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { deleteDefinition, getDefinition, getVersion, listUserDefinitions, putDefinition, type DefinitionInput } from "../../services/definitions";
import { runDefinition } from "../../services/definition-runs";
import { refusal } from "../../services/flow-spec";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { errorResponses } from "../models/errors";
import { DefinitionPageSchema, DefinitionParams, DefinitionSchema, DefinitionVersionSchema, PutDefinitionBody, RunDefinitionBody, VersionParams } from "../models/definitions";
import { FlowViewSchema } from "../models/flows";
import { IdempotencyHeaders, NoContent } from "../models/openapi";
import { QueryInteger } from "../models/query";

const versionNumber = (raw: string) => {
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) throw refusal("invalid_input", "/version", `A version is a whole number from 1; got ${JSON.stringify(raw)}.`);
  return Number(raw);
};

export const definitionRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/definitions", detail: { tags: ["definitions"] } })
    .use(authPlugin(deps.authenticate))
    .put(
      "/:name",
      async ({ user, params, body, set }) => {
        const { definition, created } = await putDefinition(deps, user, params.name, body as DefinitionInput);
        set.status = created ? 201 : 200;
        return definition;
      },
      {
        params: DefinitionParams,
        body: PutDefinitionBody,
        response: { 200: DefinitionSchema, 201: DefinitionSchema, ...errorResponses(409, 413) },
        detail: {
          operationId: "putDefinition",
          summary: "Store a new immutable version of a definition (201); a body equal to the latest version's stores nothing (200)",
          description:
            "The flow is checked as POST /v1/flows checks it (a job whose data takes values from the input is checked against its handler's schema at each run). " +
            "Names: lowercase letter or digit first, then up to 127 of a-z 0-9 _ . : -. A deleted definition PUT again is live again, its versions numbered on from its last. " +
            "A name a handler module registered (source: module) is 409 definition_from_module unless you already have your own of that name.",
        },
      },
    )
    .get("", ({ user, query }) => listUserDefinitions(deps, user, query), {
      query: t.Object({ limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })), cursor: t.Optional(t.String({ maxLength: 200 })) }),
      response: { 200: DefinitionPageSchema, ...errorResponses() },
      detail: { operationId: "listDefinitions", summary: "List definitions, newest first (keyset pages: pass nextCursor as cursor)" },
    })
    .get("/:name", ({ user, params }) => getDefinition(deps, user, params.name), {
      params: DefinitionParams,
      response: { 200: DefinitionSchema, ...errorResponses(404) },
      detail: { operationId: "getDefinition", summary: "A definition: its latest version whole, and the list of its versions" },
    })
    .get("/:name/versions/:version", ({ user, params }) => getVersion(deps, user, params.name, versionNumber(params.version)), {
      params: VersionParams,
      response: { 200: DefinitionVersionSchema, ...errorResponses(404) },
      detail: { operationId: "getDefinitionVersion", summary: "One version of a definition" },
    })
    .delete(
      "/:name",
      async ({ user, params, set }) => {
        await deleteDefinition(deps, user, params.name);
        set.status = 204;
      },
      {
        params: DefinitionParams,
        detail: {
          operationId: "deleteDefinition",
          summary: "Delete a definition: no new runs (by hand, schedule or trigger: 404); runs already started go on",
          responses: NoContent("Deleted", 404, 409),
        },
      },
    )
    .post(
      "/:name/runs",
      async ({ user, params, body, headers, set }) => {
        const { flow, replayed } = await runDefinition(deps, user, params.name, body, headers["idempotency-key"]);
        set.status = 201;
        if (replayed) set.headers["idempotent-replayed"] = "true";
        return flow;
      },
      {
        params: DefinitionParams,
        body: RunDefinitionBody,
        headers: IdempotencyHeaders,
        response: { 201: FlowViewSchema, ...errorResponses(404, 409, 413) },
        detail: {
          operationId: "runDefinition",
          summary: "Run a definition (its latest version, or `version`) with an input: 201 with the flow, which records the definition and version",
          description:
            "The input is checked against the version's schema (400 `invalid_input` with the path); a `$input` reference to nothing in the input is 400 `invalid_input` naming the pointer. " +
            "Idempotency-Key: a repeat with the same key, input and version returns the first answer and starts nothing.",
        },
      },
    );
