import { t } from "elysia";
import type { SingleJobView } from "../../services/jobs";
import type { ScheduleView } from "../../services/schedules";
import { JobData, JobStatus, JsonInteger, jobOptsFields, jobViewFields } from "./flows";
import { QueryInteger } from "./query";

/** A single job has no parent, so the failure policies of flow jobs do not apply. */
export const SingleJobOptsSchema = t.Object(jobOptsFields, { additionalProperties: false });

export const JobInputSchema = t.Object(
  {
    name: t.String({ minLength: 1, maxLength: 100, description: "handler: echo, sleep, http or fail" }),
    data: t.Optional(JobData),
    opts: t.Optional(SingleJobOptsSchema),
  },
  { additionalProperties: false },
);

export const SingleJobViewSchema = t.Unsafe<SingleJobView>(
  t.Object({ ...jobViewFields, scheduleId: t.Union([t.Null(), t.String({ description: "the schedule whose run created it" })]) }),
);

export const JobPageSchema = t.Object({ items: t.Array(SingleJobViewSchema), nextCursor: t.Union([t.Null(), t.String()]) });

export const JobListQuery = t.Object({
  status: t.Optional(JobStatus),
  name: t.Optional(t.String({ maxLength: 100 })),
  scheduleId: t.Optional(t.String({ maxLength: 64 })),
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});

export const CreateScheduleBody = t.Object(
  {
    name: t.String({ minLength: 1, maxLength: 200 }),
    pattern: t.Optional(t.String({ minLength: 1, maxLength: 200, description: "cron expression (5 or 6 fields)" })),
    every: t.Optional(JsonInteger({ minimum: 100, maximum: 366 * 24 * 3600 * 1000, description: "milliseconds between runs (>= 100)" })),
    tz: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "IANA time zone for pattern" })),
    job: JobInputSchema,
  },
  { additionalProperties: false },
);

export const ScheduleViewSchema = t.Unsafe<ScheduleView>(
  t.Object({
    id: t.String(),
    name: t.String(),
    pattern: t.Union([t.Null(), t.String()]),
    every: t.Union([t.Null(), JsonInteger()]),
    tz: t.Union([t.Null(), t.String()]),
    job: t.Object({ name: t.String(), data: t.Record(t.String(), t.Unknown()), opts: t.Record(t.String(), t.Unknown()) }),
    paused: t.Boolean(),
    lastRunAt: t.Union([t.Null(), t.String()]),
    nextRunAt: t.Union([t.Null(), t.String()]),
    createdAt: t.String(),
    updatedAt: t.String(),
  }),
);

export const SchedulePageSchema = t.Object({ items: t.Array(ScheduleViewSchema), nextCursor: t.Union([t.Null(), t.String()]) });
