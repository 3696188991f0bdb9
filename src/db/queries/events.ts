import { and, asc, eq, gt, lte, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { events } from "../schema";
import { preparedPerDb } from "./prepared";
import type { FlowdEvent, LoggedEvent } from "../../events/types";

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
  const [row] = await db.select({ max: sql<string | null>`max(${events.seq})` }).from(events);
  return Number(row?.max ?? 0);
}

export async function eventBySeq(db: DbOrTx, seq: number): Promise<FlowdEvent | undefined> {
  const [row] = await db.select().from(events).where(eq(events.seq, seq)).limit(1);
  return row ? toClientEvent(row) : undefined;
}
