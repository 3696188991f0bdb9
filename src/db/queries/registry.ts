import { and, desc, eq, gt, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { handlers, workers } from "../schema";

export type HandlerRow = typeof handlers.$inferSelect;
export type WorkerRow = typeof workers.$inferSelect;

/** The channel a worker rings after registering: API processes then re-read the handlers table. */
export const REGISTRY_CHANNEL = "flowd_registry";

/** Records what one worker serves and rings the doorbell, in one transaction. */
export async function registerWorker(db: DbOrTx, worker: Omit<WorkerRow, "startedAt" | "lastSeenAt">, entries: Omit<HandlerRow, "lastSeenAt">[]) {
  await db.transaction(async (tx) => {
    if (entries.length > 0)
      await tx
        .insert(handlers)
        .values(entries.map((e) => ({ ...e, lastSeenAt: sql`now()` })))
        .onConflictDoUpdate({
          target: [handlers.queue, handlers.name],
          set: {
            source: sql`excluded.source`,
            description: sql`excluded.description`,
            dataSchema: sql`excluded.data_schema`,
            defaults: sql`excluded.defaults`,
            lastSeenAt: sql`now()`,
          },
        });
    await tx
      .insert(workers)
      .values(worker)
      .onConflictDoUpdate({ target: workers.id, set: { ...worker, lastSeenAt: sql`now()` } });
    await tx.execute(sql`select pg_notify(${REGISTRY_CHANNEL}, '1')`);
  });
}

/** The heartbeat: false when the row is gone (deleted by hand), so the caller registers again. */
export async function touchWorker(db: DbOrTx, id: string, handlerKeys: string[]): Promise<boolean> {
  const rows = await db.update(workers).set({ lastSeenAt: sql`now()` }).where(eq(workers.id, id)).returning({ id: workers.id });
  if (handlerKeys.length > 0)
    await db.execute(
      sql`update handlers set last_seen_at = now() where queue || ':' || name = any(${sql.raw("array[")}${sql.join(handlerKeys.map((k) => sql`${k}`), sql`, `)}${sql.raw("]::text[]")})`,
    );
  return rows.length > 0;
}

export async function removeWorker(db: DbOrTx, id: string) {
  await db.delete(workers).where(eq(workers.id, id));
}

export const listHandlerRows = (db: DbOrTx) => db.select().from(handlers).orderBy(handlers.queue, handlers.name);

/** Workers whose heartbeat is younger than `staleMs`. */
export const listLiveWorkers = (db: DbOrTx, staleMs: number) =>
  db
    .select()
    .from(workers)
    .where(and(gt(workers.lastSeenAt, sql`now() - make_interval(secs => ${staleMs / 1000})`)))
    .orderBy(desc(workers.startedAt));

/** Names clients used on external queues (users' own workers serve them): known from then on. */
export async function recordExternalHandlers(db: DbOrTx, seen: { queue: string; name: string }[]) {
  if (seen.length === 0) return;
  await db.transaction(async (tx) => {
    await tx
      .insert(handlers)
      .values(seen.map((s) => ({ ...s, source: "external" })))
      .onConflictDoNothing();
    await tx.execute(sql`select pg_notify(${REGISTRY_CHANNEL}, '1')`);
  });
}
