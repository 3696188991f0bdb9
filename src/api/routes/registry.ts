import { Elysia, t } from "elysia";
import type { Config } from "../../config";
import type { Db } from "../../db/client";
import type { Producer } from "../../queues";
import { listHandlers, listWorkers } from "../../services/registry-views";
import type { Authenticate } from "../../services/tokens";
import { Nullable } from "../models/common";
import { errorResponses } from "../models/errors";
import { authPlugin } from "../plugins/auth";

const HandlerSchema = t.Object({
  name: t.String(),
  queue: t.String(),
  source: t.Union([t.Literal("builtin"), t.Literal("module"), t.Literal("external")]),
  description: Nullable(t.String()),
  dataSchema: t.Unknown({ description: "the JSON Schema new jobs' data is validated against (null: any object)" }),
  workers: t.Integer({ description: "live worker processes serving it" }),
  lastSeenAt: Nullable(t.String({ format: "date-time" })),
});

const WorkerSchema = t.Object({
  id: t.String(),
  host: t.String(),
  pid: t.Union([t.Integer(), t.Null()]),
  version: Nullable(t.String()),
  queues: t.Array(t.String()),
  handlers: t.Array(t.String(), { description: "`queue:name` of each handler it serves" }),
  concurrency: t.Union([t.Integer(), t.Null()]),
  startedAt: Nullable(t.String({ format: "date-time" })),
  lastSeenAt: Nullable(t.String({ format: "date-time" })),
  kind: t.Union([t.Literal("flowd"), t.Literal("external")]),
});

/** The handler registry as workers recorded it: what names and data the API accepts, and who serves them. */
export const registryRoutes = (deps: { db: Db; config: Config; producer: Producer; authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1", detail: { tags: ["handlers"] } })
    .use(authPlugin(deps.authenticate))
    .get("/handlers", async () => ({ items: await listHandlers(deps) }), {
      response: { 200: t.Object({ items: t.Array(HandlerSchema) }), ...errorResponses() },
      detail: { operationId: "listHandlers", summary: "Every handler known on every queue, with its data schema and how many live workers serve it" },
    })
    .get("/workers", async () => ({ items: await listWorkers(deps) }), {
      response: { 200: t.Object({ items: t.Array(WorkerSchema) }), ...errorResponses() },
      detail: { operationId: "listWorkers", summary: "Live worker processes (flowd's, and BullMQ workers connected to external queues)" },
    });
