import { Elysia } from "elysia";
import type { Config } from "../../config";
import type { ServiceDeps } from "../../services/deps";
import type { Authenticate } from "../../services/tokens";
import { completionUrl, decide, listApprovals, signalJob, signalKey } from "../../services/waits";
import { authPlugin } from "../plugins/auth";
import { IdParams } from "../models/common";
import { errorResponses } from "../models/errors";
import { ApprovalListSchema, CompletionUrlSchema, DecisionBody, KeySignalAnswerSchema, KeySignalBody, SignalBody, WaitAnswerSchema } from "../models/waits";

/**
 * Ending wait steps (services/waits.ts): signals by job or by key, approvals' decisions, and a
 * signal step's completion URL for a third party. `:id` is a job's row id, a flow's job or a single job.
 */
export const waitRoutes = (deps: Pick<ServiceDeps, "db" | "producer" | "log"> & { config: Config; authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1", detail: { tags: ["waits"] } })
    .use(authPlugin(deps.authenticate))
    .post("/jobs/:id/signal", async ({ user, params, body }) => await signalJob(deps, user, params.id, body.payload ?? null), {
      params: IdParams,
      body: SignalBody,
      response: { 200: WaitAnswerSchema, ...errorResponses(404, 409, 413) },
      detail: { operationId: "signalJob", summary: "Complete a waiting `signal` step with a payload (its result; its dependents go on)" },
    })
    .post("/signals", async ({ user, body }) => await signalKey(deps, user, body.key, body.payload ?? null), {
      body: KeySignalBody,
      response: { 200: KeySignalAnswerSchema, ...errorResponses(413) },
      detail: { operationId: "signalKey", summary: "Complete every `signal` step of yours waiting on this key (all or none: a payload one step's schema refuses is 400)" },
    })
    .post("/jobs/:id/approve", async ({ user, params, body }) => await decide(deps, user, params.id, true, body.comment), {
      params: IdParams,
      body: DecisionBody,
      response: { 200: WaitAnswerSchema, ...errorResponses(403, 404, 409, 413) },
      detail: { operationId: "approveJob", summary: "Approve a waiting `approval` step (one of its approvers; the owner when none are named)" },
    })
    .post("/jobs/:id/reject", async ({ user, params, body }) => await decide(deps, user, params.id, false, body.comment), {
      params: IdParams,
      body: DecisionBody,
      response: { 200: WaitAnswerSchema, ...errorResponses(403, 404, 409, 413) },
      detail: { operationId: "rejectJob", summary: "Reject a waiting `approval` step: it fails with code `rejected` (its flow's policy decides the rest)" },
    })
    .get("/approvals", async ({ user }) => await listApprovals(deps, user), {
      response: { 200: ApprovalListSchema, ...errorResponses() },
      detail: { operationId: "listApprovals", summary: "Approval steps waiting for your decision (naming you, or yours naming nobody), newest first (at most 100)" },
    })
    .post(
      "/jobs/:id/completion-url",
      async ({ user, params, request }) => await completionUrl(deps, user, params.id, deps.config.publicUrl ?? new URL(request.url).origin),
      {
        params: IdParams,
        response: { 200: CompletionUrlSchema, ...errorResponses(404, 409) },
        detail: { operationId: "createCompletionUrl", summary: "A single-use URL that completes a waiting `signal` step without a token, for a third party" },
      },
    );
