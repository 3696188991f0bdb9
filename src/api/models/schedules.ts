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
    job: t.Optional(JobInputSchema),
    run: t.Optional(
      t.Object(
        {
          definition: t.String({ minLength: 1, maxLength: 128, description: "a definition's name" }),
          input: t.Optional(t.Unknown({ description: "every firing's input, checked against the version's schema now (default {})" })),
          version: t.Optional(JsonInteger({ minimum: 1, description: "pin a version (default: the latest at each firing)" })),
        },
        { additionalProperties: false, description: "each firing runs this definition: a flow linked to the schedule and the definition" },
      ),
    ),
    catchUp: t.Optional(
      t.Boolean({
        description:
          "false (default): after an outage only the first missed firing runs, late; true: the missed firings run too, the latest 10 at most",
      }),
    ),
  },
  { additionalProperties: false, $id: "CreateSchedule", description: "exactly one of pattern and every; exactly one of job and run" },
);

export const ScheduleViewSchema = t.Unsafe<ScheduleView>(
  t.Object(
    {
      id: t.String(),
      name: t.String(),
      pattern: t.Union([t.Null(), t.String()]),
      every: t.Union([t.Null(), JsonInteger()]),
      tz: t.Union([t.Null(), t.String()]),
      job: t.Optional(t.Object({ name: t.String(), data: t.Record(t.String(), t.Unknown()), opts: t.Record(t.String(), t.Unknown()) })),
      run: t.Optional(t.Object({ definition: t.String(), version: t.Union([t.Null(), JsonInteger()]), input: t.Unknown() })),
      catchUp: t.Boolean(),
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
