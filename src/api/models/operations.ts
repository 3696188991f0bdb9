import { t } from "elysia";
import { FlowStatus, JobStatus, JsonInteger, Nullable } from "./common";
import { DRY_RUN_SAMPLE, type OperationView } from "../../services/operations";

/** Explicit ids a bulk action may name: a request body's worth (a filter reaches further). */
export const MAX_BULK_IDS = 10_000;

const DateTime = (description: string) => t.String({ format: "date-time", maxLength: 64, description });

const commonFilter = {
  name: t.Optional(t.String({ maxLength: 200, description: "names starting with this" })),
  data: t.Optional(t.Record(t.String(), t.Unknown(), { description: "a JSON object the data must contain (for flows, the root job's data)" })),
  since: t.Optional(DateTime("created at or after this instant")),
  until: t.Optional(DateTime("created before this instant")),
  ids: t.Optional(t.Array(t.String({ maxLength: 64 }), { minItems: 1, maxItems: MAX_BULK_IDS, description: `explicit ids (up to ${MAX_BULK_IDS.toLocaleString("en")}), combined with the other fields` })),
  dryRun: t.Optional(t.Boolean({ description: "only count: answers `{ matched, sample }` and changes nothing" })),
};

export const BulkFlowsBody = t.Object(
  {
    status: t.Optional(FlowStatus),
    ...commonFilter,
    definition: t.Optional(t.String({ maxLength: 128, description: "runs of this definition (any version)" })),
    scheduleId: t.Optional(t.String({ maxLength: 64 })),
    eventId: t.Optional(t.String({ maxLength: 64 })),
  },
  { additionalProperties: false, $id: "BulkFlows", description: "The filters of `GET /v1/flows` (all combined), a time range, or ids; at least one." },
);

export const BulkJobsBody = t.Object(
  { status: t.Optional(JobStatus), ...commonFilter, scheduleId: t.Optional(t.String({ maxLength: 64 })) },
  { additionalProperties: false, $id: "BulkJobs", description: "The filters of `GET /v1/jobs` (all combined), a time range, or ids; at least one." },
);

export const DryRunSchema = t.Object(
  {
    matched: JsonInteger({ description: "how many the filter matches now" }),
    sample: t.Array(t.String(), { description: `the first ${DRY_RUN_SAMPLE} ids, newest first` }),
  },
  { $id: "BulkDryRun" },
);

const ReasonSchema = t.Object({
  code: t.String({ description: "the error code the single-item route would answer (409 `flow_running`, `nothing_to_retry`…; 404 `not_found`)" }),
  message: t.String(),
  count: JsonInteger(),
  ids: t.Array(t.String(), { description: "the first few ids it hit" }),
});

export const OperationSchema = t.Unsafe<OperationView>(
  t.Object(
    {
      id: t.String(),
      kind: t.String({ description: "`flows.cancel`, `flows.retry`, `flows.delete`, `jobs.cancel`, `jobs.retry` or `jobs.delete`" }),
      filter: t.Record(t.String(), t.Unknown(), { description: "the filter as sent" }),
      status: t.Union([t.Literal("running"), t.Literal("completed"), t.Literal("cancelled"), t.Literal("failed")]),
      matched: JsonInteger({ description: "ids snapshotted when it was created" }),
      done: JsonInteger({ description: "acted on" }),
      skipped: JsonInteger({ description: "refused as the single-item route would refuse them (409, or 404 if gone meanwhile)" }),
      failed: JsonInteger({ description: "errors other than a refusal" }),
      reasons: t.Array(ReasonSchema, { description: "why items were skipped or failed, per code" }),
      error: Nullable(t.String()),
      createdAt: t.String({ format: "date-time" }),
      updatedAt: t.String({ format: "date-time" }),
      finishedAt: Nullable(t.String({ format: "date-time" })),
    },
    { $id: "Operation" },
  ),
);

export const OperationPageSchema = t.Object({ items: t.Array(OperationSchema), nextCursor: t.Union([t.Null(), t.String()]) }, { $id: "OperationPage" });
