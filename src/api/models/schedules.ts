import { t } from "elysia";
import type { ScheduleView } from "../../services/schedules";
import { JsonInteger } from "./common";
import { JobInputSchema } from "./jobs";
import { QueryInteger } from "./query";

export const CreateScheduleBody = t.Object(
  {
    name: t.String({ minLength: 1, maxLength: 200 }),
    pattern: t.Optional(t.String({ minLength: 1, maxLength: 200, description: "cron expression (5 or 6 fields)" })),
    every: t.Optional(JsonInteger({ minimum: 100, maximum: 366 * 24 * 3600 * 1000, description: "milliseconds between runs, from 100 to 366 days" })),
    tz: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "IANA time zone for pattern" })),
    job: JobInputSchema,
  },
  { additionalProperties: false, $id: "CreateSchedule", description: "exactly one of pattern and every" },
);

export const ScheduleViewSchema = t.Unsafe<ScheduleView>(
  t.Object(
    {
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
    },
    { $id: "Schedule" },
  ),
);

export const SchedulePageSchema = t.Object(
  { items: t.Array(ScheduleViewSchema), nextCursor: t.Union([t.Null(), t.String()]) },
  { $id: "SchedulePage" },
);

export const ScheduleListQuery = t.Object({
  limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })),
  cursor: t.Optional(t.String({ maxLength: 200 })),
});
