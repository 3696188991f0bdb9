import { t } from "elysia";
import { MAX_BULK_JOBS, type SingleJobView } from "../../services/jobs";
import { JobStatus, JsonInteger } from "./common";
import { WAITING_REASONS } from "../../scheduling/waiting-for";
import { DebounceSchema, JobData, jobOptsFields, jobViewFields } from "./flows";
import { QueryInteger } from "./query";

/** A single job has no parent, so the failure policies of flow jobs do not apply. */
export const SingleJobOptsSchema = t.Object({ ...jobOptsFields, debounce: t.Optional(DebounceSchema) }, { additionalProperties: false, $id: "JobOpts" });

export const JobInputSchema = t.Object(
  {
    name: t.String({ minLength: 1, maxLength: 100, description: "handler: a built-in (echo, sleep, http, fail), one a worker registered (GET /v1/handlers), or any name on an external queue" }),
    queue: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "`jobs` (default) or one of FLOWD_EXTERNAL_QUEUES" })),
    data: t.Optional(JobData),
    opts: t.Optional(SingleJobOptsSchema),
  },
  { additionalProperties: false, $id: "CreateJob" },
);

const singleJobViewFields = {
  ...jobViewFields,
  scheduleId: t.Union([t.Null(), t.String({ description: "the schedule whose run created it" })]),
  waitingFor: t.Optional(
    t.Object(
      {
        reason: t.Union(WAITING_REASONS.map((r) => t.Literal(r))),
        key: t.Optional(t.String()),
        until: t.Optional(t.String({ format: "date-time" })),
      },
      { description: "a `pending` job held out of Redis: why (`debounce`: its debounce window is open until `until`)" },
    ),
  ),
  debounce: t.Optional(
    t.Object(
      {
        key: t.String(),
        collapsed: JsonInteger({ description: "creates collapsed into this job after the first (49 for 50 creates)" }),
        until: t.String({ format: "date-time", description: "when its window ends (or ended): the job runs right after" }),
      },
      { description: "a debounced job (opts.debounce)" },
    ),
  ),
};

export const SingleJobViewSchema = t.Unsafe<SingleJobView>(t.Object(singleJobViewFields, { $id: "Job" }));

/** `POST /v1/jobs` answers the job; a debounced create says whether it joined a job an earlier create opened. */
export const CreatedJobViewSchema = t.Unsafe<SingleJobView & { debounced?: boolean }>(
  t.Object(
    {
      ...singleJobViewFields,
      debounced: t.Optional(t.Boolean({ description: "opts.debounce only: true when this create collapsed into the job shown (201 with false opened it)" })),
    },
    { $id: "CreatedJob" },
  ),
);

/** `POST /v1/jobs/bulk`: up to 1,000 jobs, all or nothing. */
export const CreateJobsBulkBody = t.Object(
  { jobs: t.Array(JobInputSchema, { minItems: 1, maxItems: MAX_BULK_JOBS, description: `1 to ${MAX_BULK_JOBS.toLocaleString("en")} jobs, created together or not at all` }) },
  { additionalProperties: false, $id: "CreateJobsBulk" },
);

export const JobItemsSchema = t.Object({ items: t.Array(SingleJobViewSchema) }, { $id: "JobItems" });

export const JobPageSchema = t.Object({ items: t.Array(SingleJobViewSchema), nextCursor: t.Union([t.Null(), t.String()]) }, { $id: "JobPage" });

/** `data=`: a JSON object the data must contain; parsed (and refused when not an object) by the service. */
export const DataFilter = t.String({
  maxLength: 4096,
  description: 'a JSON object, URL-encoded: only items whose data contains it (`{"customer":42}`); for flows, the root job\'s data',
  examples: ['{"customer":42}'],
});

export const JobListQuery = t.Object({
  status: t.Optional(JobStatus),
  name: t.Optional(t.String({ maxLength: 100, description: "jobs whose handler name starts with this" })),
  data: t.Optional(DataFilter),
  scheduleId: t.Optional(t.String({ maxLength: 64 })),
  since: t.Optional(t.String({ format: "date-time", maxLength: 64, description: "created at or after this instant" })),
  until: t.Optional(t.String({ format: "date-time", maxLength: 64, description: "created before this instant" })),
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});
