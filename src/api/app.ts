import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import type { Redis } from "ioredis";
import type { Database } from "../db/client";
import { TooLarge } from "../errors";
import type { Hub } from "../events/hub";
import type { FlowDeps } from "../services/flows";
import type { Authenticate } from "../services/tokens";
import { VERSION } from "../version";
import { errorPlugin } from "./plugins/errors";
import { healthRoutes } from "./routes/health";
import { flowRoutes } from "./routes/flows";
import { eventRoutes } from "./routes/events";
import { SOCKET_BACKPRESSURE_LIMIT, SOCKET_MAX_FRAME, wsRoutes } from "./ws";

export interface ApiDeps extends FlowDeps {
  database: Database;
  redis: Redis;
  authenticate: Authenticate;
  hub: Hub;
}

/** The whole HTTP surface; `listen` is the caller's business, so tests can use `app.handle`. */
export function createApp(deps: ApiDeps) {
  const { config } = deps;
  return new Elysia({
    normalize: false,
    serve: { maxRequestBodySize: config.bodyLimit + 64 * 1024 },
    websocket: {
      idleTimeout: 120,
      sendPings: true,
      maxPayloadLength: SOCKET_MAX_FRAME,
      backpressureLimit: SOCKET_BACKPRESSURE_LIMIT,
      closeOnBackpressureLimit: true,
    },
  })
    .use(errorPlugin(deps.log))
    .onRequest(({ request }) => {
      // Refuse an oversized body before reading it; chunked bodies are capped by the server's own limit.
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > config.bodyLimit)
        throw new TooLarge(`The request body is ${length} bytes; the limit is ${config.bodyLimit} bytes (FLOWD_BODY_LIMIT).`, {
          limit: config.bodyLimit,
        });
    })
    .use(
      openapi({
        path: "/docs",
        specPath: "/docs/json",
        documentation: {
          info: { title: "flowd", version: VERSION, description: "Job flows on BullMQ, with Postgres as the source of truth." },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
          security: [{ bearer: [] }],
        },
      }),
    )
    .use(healthRoutes({ sql: deps.database.sql, redis: deps.redis }))
    .use(flowRoutes(deps))
    .use(eventRoutes({ db: deps.db, authenticate: deps.authenticate }))
    .use(wsRoutes({ db: deps.db, hub: deps.hub, authenticate: deps.authenticate }));
}
export type App = ReturnType<typeof createApp>;
