import { Elysia } from "elysia";
import type { ServiceDeps } from "../../services/deps";
import { spawnForAttempt, type SpawnRequest } from "../../services/spawn";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { SpawnAnswerSchema, SpawnBody } from "../models/spawn";

/**
 * Jobs added to a running graph flow by a worker flowd does not run (your own BullMQ worker), and its
 * join on them. The API token says whose job it is; the lock token says it is the running attempt.
 */
export const spawnRoutes = (deps: ServiceDeps & { authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/jobs", detail: { tags: ["flows"] } })
    .use(authPlugin(deps.authenticate))
    .post("/:id/spawn", async ({ user, params, body }) => await spawnForAttempt(deps, user.userId, params.id, body as SpawnRequest), {
      params: IdParams,
      body: SpawnBody,
      response: { 200: SpawnAnswerSchema, ...errorResponses(404, 409, 413) },
      detail: {
        operationId: "spawnJobs",
        summary: "From a running graph job (by its BullMQ id or row id): add jobs to its flow and/or join on jobs of the flow",
        description:
          "Authorised by the API token of the job's user and the BullMQ lock token of the attempt that runs it: an attempt that ended answers 409 `attempt_ended`, " +
          "a job of a tree flow 409 `not_a_graph`, another user's job 404. Added jobs obey the limits of a create (FLOWD_MAX_FLOW_JOBS counts them, at most 10 dependencies per added job, " +
          "keys new to the flow, dependencies on the flow's jobs or the same spawn's); all or nothing. With `waitFor`, answers the joined results at once when they have all ended, " +
          "else parks the job (`parked: true`): end the run without completing it; BullMQ runs it again when they have, and the same request then answers their results.",
      },
    });
