import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import type { Redis } from "ioredis";
import type { Database } from "../db/client";
import type { Hub } from "../events/hub";
import type { FlowDeps } from "../services/flows";
import type { Authenticate } from "../services/tokens";
import { VERSION } from "../version";
import { errorPlugin } from "./plugins/errors";
import { jsonBodyPlugin } from "./plugins/body";
import { healthRoutes } from "./routes/health";
import { metricsRoutes } from "./routes/metrics";
import type { Listener } from "../events/listener";
import { flowRoutes } from "./routes/flows";
import { eventRoutes } from "./routes/events";
import { jobRoutes } from "./routes/jobs";
import { scheduleRoutes } from "./routes/schedules";
import { webhookRoutes } from "./routes/webhooks";
import { SOCKET_MAX_FRAME, wsRoutes } from "./ws";
import { LONG_POLL_MAX_S } from "../services/waiters";

export interface ApiDeps extends FlowDeps {
  database: Database;
  redis: Redis;
  authenticate: Authenticate;
  hub: Hub;
  listener?: Listener;
}

/** The whole HTTP surface; `listen` is the caller's business, so tests can use `app.handle`. */
export function createApp(deps: ApiDeps) {
  const { config } = deps;
  const sockets = new Map<string, unknown>();
  return new Elysia({
    normalize: false,
    // Bun's own cap answers without a body, so it sits far above the limit that the body plugin
    // enforces (with a proper 413) for declared and streamed bodies alike.
    serve: {
      maxRequestBodySize: Math.max(64 * 1024 * 1024, config.bodyLimit * 4),
      // Above the longest long-poll (`wait` ≤ 60 s), so a waiting request is never cut off idle.
      idleTimeout: LONG_POLL_MAX_S + 15,
    },
    websocket: {
      idleTimeout: 120,
      sendPings: true,
      maxPayloadLength: SOCKET_MAX_FRAME,
      backpressureLimit: config.socketBufferLimit,
      closeOnBackpressureLimit: true,
    },
  })
    .use(errorPlugin(deps.log))
    .use(jsonBodyPlugin(config.bodyLimit))
    .use(
      openapi({
        path: "/docs",
        specPath: "/docs/json",
        documentation: {
          info: { title: "flowd", version: VERSION, description: "Job flows on BullMQ, with Postgres as the source of truth." },
          components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
          security: [{ bearer: [] }],
          // The socket as a plain GET that upgrades: OpenAPI has no WebSocket operation.
          paths: {
            "/v1/ws": {
              get: {
                tags: ["events"],
                summary: "Live events over a WebSocket (upgrade); see the README for the protocol",
                parameters: [{ name: "token", in: "query", required: false, schema: { type: "string" }, description: "The API token, for clients that cannot set headers" }],
                responses: { "101": { description: "Switching to the WebSocket protocol" }, "401": { description: "No or bad token" } },
              },
            },
          },
        },
      }),
    )
    .use(healthRoutes({ sql: deps.database.sql, redis: deps.redis }))
    .use(flowRoutes(deps))
    .use(jobRoutes(deps))
    .use(scheduleRoutes(deps))
    .use(webhookRoutes(deps))
    .use(eventRoutes({ db: deps.db, authenticate: deps.authenticate }))
    .use(metricsRoutes({ ...deps, socketCount: () => sockets.size }))
    .use(wsRoutes({ db: deps.db, hub: deps.hub, authenticate: deps.authenticate, config, sockets }));
}
export type App = ReturnType<typeof createApp>;
