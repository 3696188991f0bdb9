import { Elysia, t } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { createSchedule, deleteSchedule, getSchedule, listUserSchedules, type ScheduleInput } from "../../services/schedules";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { ErrorSchema } from "../models/errors";
import { IdParams } from "../models/flows";
import { CreateScheduleBody, SchedulePageSchema, ScheduleViewSchema } from "../models/jobs";
import { QueryInteger } from "../models/query";

const errors = { 400: ErrorSchema, 401: ErrorSchema, 404: ErrorSchema, 413: ErrorSchema, 503: ErrorSchema };

export const scheduleRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/schedules", detail: { tags: ["schedules"] } })
    .use(authPlugin(deps.authenticate))
    .post(
      "",
      async ({ user, body, set }) => {
        const schedule = await createSchedule(deps, user, body as ScheduleInput);
        set.status = 201;
        return schedule;
      },
      {
        body: CreateScheduleBody,
        response: { 201: ScheduleViewSchema, ...errors },
        detail: { summary: "Create a schedule: a cron pattern (with tz) or every N ms, and the job each run creates" },
      },
    )
    .get("", async ({ user, query }) => await listUserSchedules(deps, user, query), {
      query: t.Object({ limit: t.Optional(QueryInteger({ minimum: 1, maximum: 100 })), cursor: t.Optional(t.String({ maxLength: 200 })) }),
      response: { 200: SchedulePageSchema, ...errors },
      detail: { summary: "List schedules, newest first" },
    })
    .get("/:id", async ({ user, params }) => await getSchedule(deps, user, params.id), {
      params: IdParams,
      response: { 200: ScheduleViewSchema, ...errors },
      detail: { summary: "A schedule with its next run" },
    })
    .delete(
      "/:id",
      async ({ user, params, set }) => {
        await deleteSchedule(deps, user, params.id);
        set.status = 204;
      },
      { params: IdParams, detail: { summary: "Remove a schedule; jobs it already created stay" } },
    );
