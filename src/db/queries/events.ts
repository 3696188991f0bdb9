import { and, asc, eq, gt, isNull, lte, notInArray, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { events } from "../schema";
import { preparedPerDb } from "./prepared";
import { JOB_EVENT_TYPES, type FlowdEvent, type LoggedEvent } from "../../event-types";

type EventRow = typeof events.$inferSelect;

export function toClientEvent(r: Pick<EventRow, "seq" | "type" | "flowId" | "jobId" | "status" | "at" | "data">): FlowdEvent {
  return {
    seq: r.seq,
    type: r.type,
    ...(r.flowId ? { flowId: r.flowId } : {}),
    ...(r.jobId ? { jobId: r.jobId } : {}),
    ...(r.status ? { status: r.status } : {}),
    at: r.at.toISOString(),
    ...(r.data !== null && r.data !== undefined ? { data: r.data } : {}),
  };
}

const eventsAfterQuery = preparedPerDb((db) =>
  db
    .select()
    .from(events)
    .where(gt(events.seq, sql.placeholder("after")))
    .orderBy(asc(events.seq))
    .limit(sql.placeholder("limit"))
    .prepare("flowd_events_after"),
);

/**
 * Every user's events after `after`, oldest first: what the listener hands to the hub. Prepared:
 * it runs on every doorbell.
 */
export async function eventsAfter(db: DbOrTx, after: number, limit: number): Promise<LoggedEvent[]> {
  const rows = await eventsAfterQuery(db).execute({ after, limit });
  return rows.map((r) => ({ ...toClientEvent(r), userId: r.userId }));
}

const maxSeqQuery = preparedPerDb((db) => db.select({ max: sql<string | null>`max(${events.seq})` }).from(events).prepare("flowd_events_max"));

const flowLevelQuery = preparedPerDb((db) =>
  db
    .select()
    .from(events)
    .where(
      and(
        gt(events.seq, sql.placeholder("after")),
        lte(events.seq, sql.placeholder("upTo")),
        or(notInArray(events.type, JOB_EVENT_TYPES), isNull(events.flowId)),
      ),
    )
    .orderBy(asc(events.seq))
    .limit(sql.placeholder("limit"))
    .prepare("flowd_flow_level_events_after"),
);

/**
 * The events after `after` except flow jobs' updates — the flow events and single jobs' events
 * that long-polls wait for — with how far the log was read (`upTo`): what the listener reads while
 * no socket is subscribed, so a busy flow's thousands of job updates are not shipped for nothing.
 */
export async function flowLevelEventsAfter(db: DbOrTx, after: number, limit: number): Promise<{ events: LoggedEvent[]; upTo: number }> {
  const [top] = await maxSeqQuery(db).execute();
  const max = Number(top?.max ?? 0);
  if (max <= after) return { events: [], upTo: after };
  const rows = await flowLevelQuery(db).execute({ after, upTo: max, limit });
  const events = rows.map((r) => ({ ...toClientEvent(r), userId: r.userId }));
  return { events, upTo: rows.length === limit ? rows[rows.length - 1]!.seq : max };
}

/** One user's events in (after, upTo], optionally of one flow: replay for a socket or a page of GET /v1/events. */
export async function userEvents(
  db: DbOrTx,
  q: { userId: string; after: number; upTo?: number; flowId?: string; limit: number },
): Promise<FlowdEvent[]> {
  const conditions = [eq(events.userId, q.userId), gt(events.seq, q.after)];
  if (q.upTo !== undefined) conditions.push(lte(events.seq, q.upTo));
  if (q.flowId) conditions.push(eq(events.flowId, q.flowId));
  const rows = await db.select().from(events).where(and(...conditions)).orderBy(asc(events.seq)).limit(q.limit);
  return rows.map(toClientEvent);
}

export async function maxEventSeq(db: DbOrTx): Promise<number> {
  const [row] = await maxSeqQuery(db).execute();
  return Number(row?.max ?? 0);
}

export async function eventBySeq(db: DbOrTx, seq: number): Promise<FlowdEvent | undefined> {
  const [row] = await db.select().from(events).where(eq(events.seq, seq)).limit(1);
  return row ? toClientEvent(row) : undefined;
}
