import { Elysia, t } from "elysia";
import { LONG_POLL_MAX_S } from "../../services/waiters";
import type { ServiceDeps } from "../../services/deps";
import { createDebouncedJob } from "../../services/debounce";
import { cancelJob, createJob, createJobs, deleteJob, getJob, listUserJobs, retryJob } from "../../services/jobs";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { IdempotencyHeaders, NoContent } from "../models/openapi";
import { CreatedJobViewSchema, CreateJobsBulkBody, JobItemsSchema, JobInputSchema, JobListQuery, JobPageSchema, SingleJobViewSchema } from "../models/jobs";
import { QueryNumber } from "../models/query";

export const jobRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/jobs", detail: { tags: ["jobs"] } })
    .use(authPlugin(deps.authenticate))
    .post(
      "",
      async ({ user, body, headers, set }) => {
        const debounce = body.opts?.debounce;
        if (debounce) {
          const { job, replayed, debounced } = await createDebouncedJob(deps, user, { ...body, opts: { ...body.opts, debounce } }, headers["idempotency-key"]);
          // A create that joined an open window created nothing: 200, naming the job that will run.
          set.status = debounced ? 200 : 201;
          if (replayed) set.headers["idempotent-replayed"] = "true";
          return { ...job, debounced };
        }
        const { job, replayed } = await createJob(deps, user, body, headers["idempotency-key"]);
        set.status = 201;
        if (replayed) set.headers["idempotent-replayed"] = "true";
        return job;
      },
      {
        body: JobInputSchema,
        headers: IdempotencyHeaders,
        response: { 200: CreatedJobViewSchema, 201: CreatedJobViewSchema, ...errorResponses(409, 413) },
        detail: { operationId: "createJob", summary: "Create a single job; Idempotency-Key makes a repeat return the first answer" },
      },
    )
    .post(
      "/bulk",
      async ({ user, body, headers, set }) => {
        const { page, replayed } = await createJobs(deps, user, body, headers["idempotency-key"]);
        set.status = 201;
        if (replayed) set.headers["idempotent-replayed"] = "true";
        return page;
      },
      {
        body: CreateJobsBulkBody,
        headers: IdempotencyHeaders,
        response: { 201: JobItemsSchema, ...errorResponses(409, 413) },
        detail: { operationId: "createJobsBulk", summary: "Create up to 1,000 single jobs in one request, all or nothing (one insert, one Redis round trip); the items answer in order" },
      },
    )
    .get("", async ({ user, query }) => await listUserJobs(deps, user, query), {
      query: JobListQuery,
      response: { 200: JobPageSchema, ...errorResponses() },
      detail: { operationId: "listJobs", summary: "List single jobs, newest first (filters: status, name prefix, data containment, scheduleId)" },
    })
    .get("/:id", async ({ user, params, query }) => await getJob(deps, user, params.id, query.wait ?? 0), {
      params: IdParams,
      query: t.Object({ wait: t.Optional(QueryNumber({ minimum: 0, maximum: LONG_POLL_MAX_S })) }),
      response: { 200: SingleJobViewSchema, ...errorResponses(404) },
      detail: { operationId: "getJob", summary: "A single job; ?wait=N answers as soon as it finishes or N seconds pass" },
    })
    .post("/:id/cancel", async ({ user, params }) => await cancelJob(deps, user, params.id), {
      params: IdParams,
      response: { 200: SingleJobViewSchema, ...errorResponses(404, 409) },
      detail: { operationId: "cancelJob", summary: "Cancel an unfinished job (409 if it already finished)" },
    })
    .post("/:id/retry", async ({ user, params }) => await retryJob(deps, user, params.id), {
      params: IdParams,
      response: { 200: SingleJobViewSchema, ...errorResponses(404, 409) },
      detail: { operationId: "retryJob", summary: "Run a failed job again (409 otherwise)" },
    })
    .delete(
      "/:id",
      async ({ user, params, set }) => {
        await deleteJob(deps, user, params.id);
        set.status = 204;
      },
      {
        params: IdParams,
        detail: { operationId: "deleteJob", summary: "Delete a finished single job (409 `job_running` until it finished)", responses: NoContent("Deleted", 404, 409) },
      },
    );
