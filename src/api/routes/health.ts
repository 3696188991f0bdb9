import { Elysia, t } from "elysia";
import type { RedisClient as Redis } from "../../redis";
import type { Sql } from "postgres";
import { readiness, type DegradedCheck } from "../../readiness";
import { READINESS_RESPONSES } from "../models/openapi";

export const healthRoutes = (deps: { sql: Sql; redis: Redis | null; degraded?: DegradedCheck }) =>
  new Elysia({ name: "health", detail: { tags: ["health"] } })
    .get("/healthz", () => ({ status: "ok" as const }), {
      response: t.Object({ status: t.Literal("ok") }),
      detail: { operationId: "getHealth", summary: "Liveness: the process answers", security: [] },
    })
    .get(
      "/readyz",
      async ({ set }) => {
        const { status, body } = await readiness(deps);
        set.status = status;
        return body;
      },
      {
        detail: {
          operationId: "getReadiness",
          security: [],
          responses: READINESS_RESPONSES,
          summary: "Readiness: Postgres and Redis reachable (503 with the reason otherwise); `status: degraded` lists what falls short (no status recorder, recorder behind, a Redis Cluster master holding no shard)",
        },
      },
    );
