import { t } from "elysia";
import type { OpenAPIV3 } from "openapi-types";
import { ERROR_MEANINGS } from "./errors";

/*
 * What the routes' schemas cannot say by themselves, in OpenAPI terms: responses of routes that
 * declare no response schema (a 204, Prometheus text, readiness's two shapes).
 */

const errorRef = { $ref: "#/components/schemas/Error" };
type ErrorStatus = keyof typeof ERROR_MEANINGS;

const errorResponse = (status: ErrorStatus) => ({ description: ERROR_MEANINGS[status], content: { "application/json": { schema: errorRef } } });

/** A DELETE's responses: 204, the shared error statuses of an authenticated route, and `extra`. */
export function NoContent(description: string, ...extra: ErrorStatus[]): OpenAPIV3.ResponsesObject {
  const statuses: ErrorStatus[] = [400, 401, 429, 503, ...extra];
  return { 204: { description }, ...Object.fromEntries(statuses.sort().map((s) => [s, errorResponse(s)])) };
}

export const IdempotencyHeaders = t.Object({
  "idempotency-key": t.Optional(
    t.String({ minLength: 1, maxLength: 255, description: "a repeat with the same key (and user) returns the first answer and creates nothing" }),
  ),
});

export const READINESS_RESPONSES: OpenAPIV3.ResponsesObject = {
  200: {
    description: "Postgres and Redis reachable (Postgres alone with FLOWD_QUEUE_BACKEND=postgres); `degraded` lists what falls short",
    content: {
      "application/json": {
        schema: {
          type: "object",
          required: ["status", "postgres"],
          properties: {
            status: { type: "string", enum: ["ready", "degraded"] },
            postgres: { type: "string", description: "ok, or down: <reason>" },
            redis: { type: "string", description: "ok, or down: <reason>; absent on the Postgres backend" },
            queueBackend: { type: "string", enum: ["postgres"], description: "Present when BullMQ runs on its Postgres backend (FLOWD_QUEUE_BACKEND=postgres): no Redis is used" },
            redisMaxmemoryPolicy: { description: "Redis's maxmemory-policy (noeviction is what BullMQ needs); null when unreadable" },
            degraded: { type: "array", items: { type: "string" } },
            shards: {
              type: "object",
              description:
                "On a Redis Cluster: how the configured shards fall on its masters (read afresh). With FLOWD_SHARDS > 1, a master in `mastersWithoutShard` takes no new work and `degraded` says so",
              properties: {
                masters: { type: "integer" },
                shards: { type: "integer" },
                mastersWithoutShard: { type: "array", items: { type: "string", description: "host:port" } },
              },
            },
          },
          additionalProperties: true,
        },
      },
    },
  },
  503: { description: "Postgres or Redis unreachable (code not_ready)", content: { "application/json": { schema: errorRef } } },
};

export const METRICS_RESPONSES: OpenAPIV3.ResponsesObject = {
  200: { description: "Prometheus text exposition", content: { "text/plain": { schema: { type: "string" } } } },
};
