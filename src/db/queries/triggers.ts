import { and, asc, count, eq, lt, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { publishedEvents, triggers } from "../schema";
import { isId } from "../../ids";
import { newestFirst, olderThan } from "./pagination";

export type TriggerRow = typeof triggers.$inferSelect;
export type PublishedEventRow = typeof publishedEvents.$inferSelect;
type Before = { createdAt: Date; id: string };

export async function insertTrigger(db: DbOrTx, row: typeof triggers.$inferInsert) {
  await db.insert(triggers).values(row);
}

export async function countTopicTriggers(db: DbOrTx, userId: string, topic: string): Promise<number> {
  const [row] = await db.select({ n: count() }).from(triggers).where(and(eq(triggers.userId, userId), eq(triggers.topic, topic)));
  return row?.n ?? 0;
}

export async function listTriggers(db: DbOrTx, userId: string, q: { limit: number; before?: Before; topic?: string }) {
  const conditions = [eq(triggers.userId, userId)];
  if (q.topic) conditions.push(eq(triggers.topic, q.topic));
  if (q.before) conditions.push(olderThan(triggers.createdAt, triggers.id, q.before));
  return db.select().from(triggers).where(and(...conditions)).orderBy(...newestFirst(triggers.createdAt, triggers.id)).limit(q.limit);
}

export async function deleteTrigger(db: DbOrTx, userId: string, id: string): Promise<boolean> {
  if (!isId(id)) return false;
  const gone = await db.delete(triggers).where(and(eq(triggers.id, id), eq(triggers.userId, userId))).returning({ id: triggers.id });
  return gone.length > 0;
}

/** The user's triggers on `topic` whose filter the payload contains (Postgres' jsonb `@>`), oldest first. */
export async function matchingTriggers(db: DbOrTx, userId: string, topic: string, payload: unknown): Promise<TriggerRow[]> {
  return db
    .select()
    .from(triggers)
    .where(
      and(
        eq(triggers.userId, userId),
        eq(triggers.topic, topic),
        sql`(${triggers.filter} is null or ${JSON.stringify(payload ?? null)}::jsonb @> ${triggers.filter})`,
      ),
    )
    .orderBy(asc(triggers.createdAt), asc(triggers.id));
}

/** The event's row if this call wrote it; undefined when the user already published one with this key. */
export async function insertEventOnce(db: DbOrTx, row: typeof publishedEvents.$inferInsert): Promise<PublishedEventRow | undefined> {
  const [inserted] = await db.insert(publishedEvents).values(row).onConflictDoNothing().returning();
  return inserted;
}

export async function findEventByKey(db: DbOrTx, userId: string, key: string): Promise<PublishedEventRow | undefined> {
  const [row] = await db.select().from(publishedEvents).where(and(eq(publishedEvents.userId, userId), eq(publishedEvents.eventKey, key))).limit(1);
  return row;
}

export async function listPublished(db: DbOrTx, userId: string, q: { limit: number; before?: Before; topic?: string }) {
  const conditions = [eq(publishedEvents.userId, userId)];
  if (q.topic) conditions.push(eq(publishedEvents.topic, q.topic));
  if (q.before) conditions.push(olderThan(publishedEvents.createdAt, publishedEvents.id, q.before));
  return db
    .select()
    .from(publishedEvents)
    .where(and(...conditions))
    .orderBy(...newestFirst(publishedEvents.createdAt, publishedEvents.id))
    .limit(q.limit);
}

/** Forgets events published before `before`: their ids may then be published again. */
export async function prunePublished(db: DbOrTx, before: Date): Promise<number> {
  const gone = await db.delete(publishedEvents).where(lt(publishedEvents.createdAt, before)).returning({ id: publishedEvents.id });
  return gone.length;
}
