import { Elysia, t } from "elysia";
import type { Db } from "../../db/client";
import { assertEventsKept, eventsPage } from "../../services/event-log";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { errorResponses } from "../models/errors";
import { EventPageSchema } from "../models/events";
import { MAX_SAFE, QueryInteger } from "../models/query";

export const eventRoutes = (deps: { db: Db; authenticate: Authenticate }) =>
  new Elysia({ prefix: "/v1/events", detail: { tags: ["events"] } })
    .use(authPlugin(deps.authenticate))
    .get(
      "",
      async ({ user, query }) => {
        const after = query.after ?? 0;
        if (query.after !== undefined) await assertEventsKept(deps.db, after);
        const { events: items } = await eventsPage(deps.db, { userId: user.userId, after, flowId: query.flowId, limit: query.limit ?? 100 });
        return { items, nextAfter: items.length > 0 ? items[items.length - 1]!.seq : after };
      },
      {
        query: t.Object({
          after: t.Optional(QueryInteger({ minimum: 0, maximum: MAX_SAFE, description: "a seq: events with a larger one" })),
          limit: t.Optional(QueryInteger({ minimum: 1, maximum: 1000 })),
          flowId: t.Optional(t.String({ maxLength: 64 })),
        }),
        response: { 200: EventPageSchema, ...errorResponses(410) },
        detail: { operationId: "listEvents", summary: "The event log after a seq, ascending; 410 events_expired when retention removed what follows it" },
      },
    );
