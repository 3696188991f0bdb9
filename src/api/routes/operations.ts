import { Elysia, t } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { cancelOperation, dryRunBulk, getOperation, listUserOperations, startBulk, type BulkAction, type BulkBody } from "../../services/operations";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { BulkFlowsBody, BulkJobsBody, DryRunSchema, OperationPageSchema, OperationSchema } from "../models/operations";
import { QueryInteger } from "../models/query";

type OperationDeps = ServiceDeps & { authenticate: Authenticate; kickOperations?: () => void };

const SUMMARIES: Record<BulkAction, string> = {
  cancel: "Cancel every matched one that is unfinished",
  retry: "Retry every matched one that failed",
  delete: "Delete every matched one that finished",
};

/**
 * `POST /v1/{flows,jobs}/bulk/{cancel,retry,delete}`: a dry run answers 200 with the count; otherwise
 * 202 with the operation, worked in the background (GET /v1/operations/:id follows it).
 */
function bulkRoutes(deps: OperationDeps, target: "flows" | "jobs") {
  const body = target === "flows" ? BulkFlowsBody : BulkJobsBody;
  let app = new Elysia({ prefix: `/v1/${target}/bulk`, detail: { tags: [target] } }).use(authPlugin(deps.authenticate));
  for (const action of ["cancel", "retry", "delete"] as const) {
    app = app.post(
      `/${action}`,
      async ({ user, body, set }) => {
        if ((body as BulkBody).dryRun) return dryRunBulk(deps, user, target, body as BulkBody);
        const op = await startBulk(deps, user, target, action, body as BulkBody);
        deps.kickOperations?.();
        set.status = 202;
        return op;
      },
      {
        body,
        response: { 200: DryRunSchema, 202: OperationSchema, ...errorResponses() },
        detail: {
          operationId: `bulk${action[0]!.toUpperCase()}${action.slice(1)}${target === "flows" ? "Flows" : "Jobs"}`,
          summary: `${SUMMARIES[action]} ${target === "flows" ? "flow" : "single job"} (by filter or ids; dryRun counts)`,
          description:
            "The matched ids are snapshotted into an operation (202), worked in the background in batches, each exactly as the " +
            `single-item route would (events, webhooks); those it would refuse with 409 are counted as skipped with the reason. ` +
            "More matches than FLOWD_BULK_MAX is 400 `bulk_too_large`; no filter at all is 400 `empty_filter`. " +
            "`dryRun: true` answers 200 `{ matched, sample }` and changes nothing.",
        },
      },
    ) as unknown as typeof app;
  }
  return app;
}

export const operationRoutes = (deps: OperationDeps) =>
  new Elysia()
    .use(bulkRoutes(deps, "flows"))
    .use(bulkRoutes(deps, "jobs"))
    .use(
      new Elysia({ prefix: "/v1/operations", detail: { tags: ["operations"] } })
        .use(authPlugin(deps.authenticate))
        .get("", ({ user, query }) => listUserOperations(deps, user, query), {
          query: t.Object({ limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })), cursor: t.Optional(t.String({ maxLength: 200 })) }),
          response: { 200: OperationPageSchema, ...errorResponses() },
          detail: { operationId: "listOperations", summary: "Bulk operations, newest first" },
        })
        .get("/:id", ({ user, params }) => getOperation(deps, user, params.id), {
          params: IdParams,
          response: { 200: OperationSchema, ...errorResponses(404) },
          detail: { operationId: "getOperation", summary: "A bulk operation: matched, done, skipped, failed, with reasons" },
        })
        .post("/:id/cancel", ({ user, params }) => cancelOperation(deps, user, params.id), {
          params: IdParams,
          response: { 200: OperationSchema, ...errorResponses(404, 409) },
          detail: { operationId: "cancelOperation", summary: "Stop a running bulk operation before its next batch (409 `operation_finished` once it ended)" },
        }),
    );
