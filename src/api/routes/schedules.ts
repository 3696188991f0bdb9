import { Elysia } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { createSchedule, deleteSchedule, getSchedule, listUserSchedules, type ScheduleInput } from "../../services/schedules";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { CreateScheduleBody, ScheduleListQuery, SchedulePageSchema, ScheduleViewSchema } from "../models/schedules";
import { NoContent } from "../models/openapi";

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
        response: { 201: ScheduleViewSchema, ...errorResponses(404, 413) },
        detail: { operationId: "createSchedule", summary: "Create a schedule: a cron pattern (with tz) or every N ms, and the job each firing creates or the definition it runs" },
      },
    )
    .get("", async ({ user, query }) => await listUserSchedules(deps, user, query), {
      query: ScheduleListQuery,
      response: { 200: SchedulePageSchema, ...errorResponses() },
      detail: { operationId: "listSchedules", summary: "List schedules, newest first" },
    })
    .get("/:id", async ({ user, params }) => await getSchedule(deps, user, params.id), {
      params: IdParams,
      response: { 200: ScheduleViewSchema, ...errorResponses(404) },
      detail: { operationId: "getSchedule", summary: "A schedule with its next run" },
    })
    .delete(
      "/:id",
      async ({ user, params, set }) => {
        await deleteSchedule(deps, user, params.id);
        set.status = 204;
      },
      {
        params: IdParams,
        detail: { operationId: "deleteSchedule", summary: "Remove a schedule; jobs it already created stay", responses: NoContent("Removed", 404) },
      },
    );
