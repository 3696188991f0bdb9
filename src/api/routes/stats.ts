import { Elysia, t } from "elysia";
import type { Db } from "../../db/client";
import { userStats, WINDOW_PATTERN } from "../../services/stats";
import type { Authenticate } from "../../services/tokens";
import { FLOW_STATUSES, JOB_STATUSES } from "../../statuses";
import { authPlugin } from "../plugins/auth";
import { errorResponses } from "../models/errors";

const counts = (keys: readonly string[]) => t.Object(Object.fromEntries(keys.map((k) => [k, t.Integer({ minimum: 0 })])));

const Percentiles = (description: string) =>
  t.Object(
    { p50: t.Union([t.Number({ minimum: 0 }), t.Null()]), p95: t.Union([t.Number({ minimum: 0 }), t.Null()]) },
    { description },
  );

const StatsSchema = t.Object({
  window: t.String(),
  from: t.String({ format: "date-time", description: "the first minute counted" }),
  to: t.String({ format: "date-time", description: "the end of the last minute counted (the current one, so far)" }),
  flows: counts(FLOW_STATUSES),
  jobs: counts(JOB_STATUSES),
  perMinute: t.Array(
    t.Object({
      minute: t.String({ format: "date-time" }),
      completed: t.Integer({ minimum: 0 }),
      failed: t.Integer({ minimum: 0 }),
    }),
    { description: "every minute of the window, oldest first; jobs of flows and single jobs together" },
  ),
  handlers: t.Array(
    t.Object({
      handler: t.String({ description: "the job name" }),
      completed: t.Integer({ minimum: 0 }),
      failed: t.Integer({ minimum: 0 }),
      runMs: Percentiles("run time of the job's last attempt: from its start (active) to its finish"),
      waitMs: Percentiles("wait before the job's last attempt: from when it could run (waiting) to its start"),
    }),
    {
      description:
        "per handler, the jobs that finished (completed or failed) in the window, with percentiles in milliseconds; " +
        "null when none of them ran (a parent failed by its child never starts). Ordered by handler.",
    },
  ),
});

export const statsRoutes = (deps: { db: Db; authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/stats", detail: { tags: ["stats"] } })
    .use(authPlugin(deps.authenticate))
    .get("", async ({ user, query }) => await userStats(deps.db, user, query.window ?? "1h"), {
      query: t.Object({
        window: t.Optional(
          t.String({ pattern: WINDOW_PATTERN, maxLength: 5, default: "1h", description: "minutes or hours, from 1m to 24h: 15m, 1h, 24h" }),
        ),
      }),
      response: { 200: StatsSchema, ...errorResponses() },
      detail: {
        operationId: "getStats",
        summary:
          "Counts by status now (flows, jobs), jobs completed and failed per minute over the window, and per handler p50/p95 run time and wait (from Postgres)",
      },
    });
