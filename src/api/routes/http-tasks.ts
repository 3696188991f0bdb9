import { Elysia } from "elysia";
import type { Config } from "../../config";
import type { Db } from "../../db/client";
import type { Logger } from "../../log";
import { RateLimited } from "../../errors";
import type { Producer } from "../../queues";
import type { HandlerCheck } from "../../services/handler-registry";
import { spawnForTask } from "../../services/task-spawn";
import type { GraphJobInput } from "../../scheduling/graph-plan";
import { TaskSpawnAnswer, TaskSpawnBody } from "../models/spawn";
import { rotateUserSigningSecret, showSigningSecret } from "../../services/signing-secrets";
import { applyCallback, type CallbackInput } from "../../services/task-callbacks";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { errorResponses, publicErrorResponses } from "../models/errors";
import { CallbackAnswerSchema, CallbackParams, CompleteCallbackBody, FailCallbackBody, SigningSecretSchema } from "../models/http-tasks";
import { createRateLimiter } from "../rate-limit";

type Deps = { config: Config; db: Db; producer: Producer; log: Logger; registry?: HandlerCheck; authenticate: Authenticate };

/** The signing secret of `http` task requests: shown, and rotated with a 24 h overlap. */
export const signingSecretRoutes = (deps: Deps) =>
  new Elysia({ prefix: "/v1/signing-secret", detail: { tags: ["http tasks"] } })
    .use(authPlugin(deps.authenticate))
    .get("", async ({ user }) => await showSigningSecret(deps, user.userId), {
      response: { 200: SigningSecretSchema, ...errorResponses() },
      detail: { operationId: "getSigningSecret", summary: "The secret that signs your http tasks' requests (created on first use)" },
    })
    .post("/rotate", async ({ user }) => await rotateUserSigningSecret(deps, user.userId), {
      response: { 200: SigningSecretSchema, ...errorResponses() },
      detail: { operationId: "rotateSigningSecret", summary: "Replace the signing secret; the previous one signs alongside for 24 h" },
    });

const CALLBACK_ERRORS = publicErrorResponses(400, 404, 409, 410, 413, 429, 503);

/**
 * The single-use callbacks of parked `http` tasks. No token: the path is the credential (random,
 * stored hashed, bound to one job attempt). Limited per client address instead, so a flood of
 * guesses is slowed wherever it lands.
 */
export function callbackRoutes(deps: Deps) {
  const take = deps.config.callbackRateLimit > 0 ? createRateLimiter(deps.config.callbackRateLimit) : null;
  const limit = (address: string | undefined) => {
    const wait = take?.(address ?? "unknown") ?? 0;
    if (wait > 0) throw new RateLimited(wait, deps.config.callbackRateLimit, "this address");
  };
  const handle = (token: string, input: CallbackInput) => applyCallback(deps, token, input);
  const detail = (operationId: string, summary: string, description?: string) => ({ operationId, summary, security: [], ...(description ? { description } : {}) });
  return new Elysia({ prefix: "/callbacks/:token", detail: { tags: ["http tasks"] } })
    .onBeforeHandle(({ request, server }) => limit(server?.requestIP(request)?.address))
    .post("/complete", ({ params, body }) => handle(params.token, { kind: "complete", result: body.result ?? null }), {
      params: CallbackParams,
      body: CompleteCallbackBody,
      response: { 200: CallbackAnswerSchema, ...CALLBACK_ERRORS },
      detail: detail(
        "completeTask",
        "Complete a parked http task with its result (once; the parent gets it like any child's)",
        "A 200 means the job is completed with this result, whatever comes next: a cancel racing it either finds the job " +
          "finished (and cancels only the rest of its flow) or came first, and then this answers 409 `job_finished`.",
      ),
    })
    .post("/fail", ({ params, body }) => handle(params.token, { kind: "fail", message: body.message, permanent: body.permanent ?? false }), {
      params: CallbackParams,
      body: FailCallbackBody,
      response: { 200: CallbackAnswerSchema, ...CALLBACK_ERRORS },
      detail: detail("failTask", "Fail a parked http task's attempt (retried per its opts unless permanent)"),
    })
    .post("/spawn", ({ params, body }) => spawnForTask(deps, params.token, body.jobs as GraphJobInput[]), {
      params: CallbackParams,
      body: TaskSpawnBody,
      response: { 200: TaskSpawnAnswer, ...CALLBACK_ERRORS },
      detail: detail(
        "spawnFromTask",
        "From a running http task of a graph flow: add jobs to its flow (while its request is in flight or it is parked)",
        "The same rules as POST /v1/jobs/{id}/spawn's jobs (all or nothing). A used callback or an ended wait answers 409 `attempt_ended`, a single job 409 `not_a_graph`. " +
          "No join: an http task waits for nothing it added; let a job that depends on the added ones collect their results.",
      ),
    })
    .post("/heartbeat", ({ params }) => handle(params.token, { kind: "heartbeat" }), {
      params: CallbackParams,
      response: { 200: CallbackAnswerSchema, ...CALLBACK_ERRORS },
      detail: detail("heartbeatTask", "Keep a parked http task alive: pushes its heartbeat deadline out by heartbeatTimeoutMs"),
    });
}
