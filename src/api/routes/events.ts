import { Elysia, t } from "elysia";
import type { Db } from "../../db/client";
import { assertEventsKept, eventsPage } from "../../services/event-log";
import type { Authenticate } from "../../services/tokens";
import { authPlugin } from "../plugins/auth";
import { ErrorSchema } from "../models/errors";
import { JsonInteger } from "../models/flows";
import { MAX_SAFE, QueryInteger } from "../models/query";

const EventSchema = t.Object({
  seq: JsonInteger(),
  type: t.String(),
  flowId: t.Optional(t.String()),
  jobId: t.Optional(t.String()),
  status: t.Optional(t.String()),
  at: t.String({ format: "date-time" }),
  data: t.Optional(t.Unknown()),
});

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
        response: { 200: t.Object({ items: t.Array(EventSchema), nextAfter: JsonInteger() }), 400: ErrorSchema, 401: ErrorSchema, 410: ErrorSchema },
        detail: { summary: "The event log after a seq, ascending; 410 events_expired when retention removed what follows it" },
      },
    );
