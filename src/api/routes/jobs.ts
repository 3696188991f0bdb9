import { Elysia, t } from "elysia";
import { LONG_POLL_MAX_S } from "../../services/waiters";
import type { ServiceDeps } from "../../services/deps";
import { cancelJob, createJob, getJob, listUserJobs, retryJob } from "../../services/jobs";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { ErrorSchema } from "../models/errors";
import { IdParams } from "../models/flows";
import { JobInputSchema, JobListQuery, JobPageSchema, SingleJobViewSchema } from "../models/jobs";
import { QueryNumber } from "../models/query";

const errors = { 400: ErrorSchema, 401: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 413: ErrorSchema, 503: ErrorSchema };

export const jobRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/jobs", detail: { tags: ["jobs"] } })
    .use(authPlugin(deps.authenticate))
    .post(
      "",
      async ({ user, body, headers, set }) => {
        const { job, replayed } = await createJob(deps, user, body, headers["idempotency-key"]);
        set.status = 201;
        if (replayed) set.headers["idempotent-replayed"] = "true";
        return job;
      },
      {
        body: JobInputSchema,
        headers: t.Object({ "idempotency-key": t.Optional(t.String({ minLength: 1, maxLength: 255 })) }),
        response: { 201: SingleJobViewSchema, ...errors },
        detail: { summary: "Create a single job; Idempotency-Key makes a repeat return the first answer" },
      },
    )
    .get("", async ({ user, query }) => await listUserJobs(deps, user, query), {
      query: JobListQuery,
      response: { 200: JobPageSchema, ...errors },
      detail: { summary: "List single jobs, newest first (filters: status, name, scheduleId)" },
    })
    .get("/:id", async ({ user, params, query }) => await getJob(deps, user, params.id, query.wait ?? 0), {
      params: IdParams,
      query: t.Object({ wait: t.Optional(QueryNumber({ minimum: 0, maximum: LONG_POLL_MAX_S })) }),
      response: { 200: SingleJobViewSchema, ...errors },
      detail: { summary: "A single job; ?wait=N answers as soon as it finishes or N seconds pass" },
    })
    .post("/:id/cancel", async ({ user, params }) => await cancelJob(deps, user, params.id), {
      params: IdParams,
      response: { 200: SingleJobViewSchema, ...errors },
      detail: { summary: "Cancel an unfinished job (409 if it already finished)" },
    })
    .post("/:id/retry", async ({ user, params }) => await retryJob(deps, user, params.id), {
      params: IdParams,
      response: { 200: SingleJobViewSchema, ...errors },
      detail: { summary: "Run a failed job again (409 otherwise)" },
    });
