import { and, eq, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { schedules } from "../schema";
import { isId } from "../../ids";
import { newestFirst, olderThan } from "./pagination";

export type ScheduleRow = typeof schedules.$inferSelect;

export async function insertSchedule(db: DbOrTx, row: typeof schedules.$inferInsert) {
  await db.insert(schedules).values(row);
}

export async function findSchedule(db: DbOrTx, userId: string, id: string): Promise<ScheduleRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db.select().from(schedules).where(and(eq(schedules.id, id), eq(schedules.userId, userId))).limit(1);
  return row;
}

export async function findScheduleById(db: DbOrTx, id: string): Promise<ScheduleRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db.select().from(schedules).where(eq(schedules.id, id)).limit(1);
  return row;
}

export async function listSchedules(db: DbOrTx, userId: string, q: { limit: number; before?: { createdAt: Date; id: string } }) {
  const conditions = [eq(schedules.userId, userId)];
  if (q.before) conditions.push(olderThan(schedules.createdAt, schedules.id, q.before));
  return db.select().from(schedules).where(and(...conditions)).orderBy(...newestFirst(schedules.createdAt, schedules.id)).limit(q.limit);
}

export async function allActiveSchedules(db: DbOrTx): Promise<ScheduleRow[]> {
  return db.select().from(schedules).where(eq(schedules.paused, false));
}

/** The deleted schedule's shard (where its Redis scheduler is), or undefined when there was none. */
export async function deleteSchedule(db: DbOrTx, userId: string, id: string): Promise<{ shard: number | null } | undefined> {
  if (!isId(id)) return undefined;
  const [gone] = await db.delete(schedules).where(and(eq(schedules.id, id), eq(schedules.userId, userId))).returning({ shard: schedules.shard });
  return gone;
}

export async function recordTick(db: DbOrTx, id: string, ranAt: Date, nextRunAt: Date | null) {
  await db
    .update(schedules)
    .set({ lastRunAt: sql`greatest(${schedules.lastRunAt}, ${ranAt.toISOString()}::timestamptz)`, nextRunAt, updatedAt: sql`now()` })
    .where(eq(schedules.id, id));
}
