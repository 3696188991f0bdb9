import { and, desc, eq, gt, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { webhookDeliveries, webhooks } from "../schema";
import { isId } from "../../ids";
import { newestFirst, olderThan } from "./pagination";

export type WebhookRow = typeof webhooks.$inferSelect;
export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

export async function insertWebhook(db: DbOrTx, row: typeof webhooks.$inferInsert) {
  await db.insert(webhooks).values(row);
}

export async function findWebhook(db: DbOrTx, userId: string, id: string): Promise<WebhookRow | undefined> {
  if (!isId(id)) return undefined;
  const [row] = await db.select().from(webhooks).where(and(eq(webhooks.id, id), eq(webhooks.userId, userId))).limit(1);
  return row;
}

export async function findWebhookById(db: DbOrTx, id: string): Promise<WebhookRow | undefined> {
  const [row] = await db.select().from(webhooks).where(eq(webhooks.id, id)).limit(1);
  return row;
}

export async function listWebhooks(db: DbOrTx, userId: string, q: { limit: number; before?: { createdAt: Date; id: string } }) {
  const conditions = [eq(webhooks.userId, userId)];
  if (q.before) conditions.push(olderThan(webhooks.createdAt, webhooks.id, q.before));
  return db.select().from(webhooks).where(and(...conditions)).orderBy(...newestFirst(webhooks.createdAt, webhooks.id)).limit(q.limit);
}

export async function deleteWebhook(db: DbOrTx, userId: string, id: string): Promise<boolean> {
  if (!isId(id)) return false;
  const gone = await db.delete(webhooks).where(and(eq(webhooks.id, id), eq(webhooks.userId, userId))).returning({ id: webhooks.id });
  return gone.length > 0;
}

/** The next `limit` webhooks after `afterId` (by id) whose secret does not match `sealedPattern`: plaintext from before a key was set. */
export async function plaintextSecrets(db: DbOrTx, sealedPattern: string, afterId: string, limit: number) {
  return db
    .select({ id: webhooks.id, secret: webhooks.secret })
    .from(webhooks)
    .where(and(sql`${webhooks.secret} !~ ${sealedPattern}`, gt(webhooks.id, afterId)))
    .orderBy(webhooks.id)
    .limit(limit);
}

/**
 * Replaces secrets in one statement, each only while it still holds `from` (compare-and-set): two
 * processes sealing at once, or a webhook deleted meanwhile, change nothing twice. Returns how many changed.
 */
export async function replaceSecrets(db: DbOrTx, changes: { id: string; from: string; to: string }[]): Promise<number> {
  if (changes.length === 0) return 0;
  const values = sql.join(changes.map((c) => sql`(${c.id}, ${c.from}, ${c.to})`), sql`, `);
  const changed = await db.execute<{ id: string }>(sql`
    update webhooks w set secret = v.sealed from (values ${values}) as v(id, plain, sealed)
    where w.id = v.id and w.secret = v.plain
    returning w.id`);
  return changed.length;
}

export async function disableWebhook(db: DbOrTx, id: string, reason: string) {
  await db.update(webhooks).set({ disabledAt: sql`now()`, disabledReason: reason }).where(eq(webhooks.id, id));
}

export async function recordDelivery(db: DbOrTx, row: typeof webhookDeliveries.$inferInsert) {
  await db.insert(webhookDeliveries).values(row);
}

export async function listDeliveries(db: DbOrTx, webhookId: string, q: { limit: number; before?: number }) {
  const conditions = [eq(webhookDeliveries.webhookId, webhookId)];
  if (q.before !== undefined) conditions.push(sql`${webhookDeliveries.id} < ${q.before}`);
  return db.select().from(webhookDeliveries).where(and(...conditions)).orderBy(desc(webhookDeliveries.id)).limit(q.limit);
}

export interface DueDelivery {
  seq: number;
  webhook_id: string;
  traceparent: string | null;
}

/** The dispatcher's cursor starts at the end of the event log the first time any dispatcher runs. */
export async function ensureDispatchCursor(db: DbOrTx) {
  await db.execute(sql`
    insert into dispatch_cursors (name, seq) select 'webhooks', coalesce(max(seq), 0) from events
    on conflict (name) do nothing`);
}

/**
 * One dispatch step, in the caller's transaction, in one statement: locks the cursor row and
 * returns the deliveries due for the next `limit` events and the seq to move the cursor to. Null
 * when another dispatcher holds the row (it is doing this very step: no need to wait for it).
 * A webhook gets the events that happened after it was registered, of the types it asked for.
 */
export async function claimDispatch(db: DbOrTx, limit: number): Promise<{ from: number; to: number; due: DueDelivery[] } | null> {
  const [row] = await db.execute<{ from: string; to: string; due: DueDelivery[] }>(sql`
    with cur as (select seq from dispatch_cursors where name = 'webhooks' for update skip locked),
    top as (select coalesce(max(s.seq), (select seq from cur)) as "to"
            from (select seq from events where seq > (select seq from cur) order by seq limit ${limit}) s)
    select cur.seq::text as "from", top."to"::text as "to", coalesce((
      -- With each delivery, the traceparent of the request that created the event's flow (or single job).
      select jsonb_agg(jsonb_build_object('seq', e.seq, 'webhook_id', w.id, 'traceparent', coalesce(f.traceparent, j.traceparent)) order by e.seq)
      from events e join webhooks w on w.user_id = e.user_id
        left join flows f on f.id = e.flow_id
        left join jobs j on e.flow_id is null and j.id = e.job_id
      where e.seq > cur.seq and e.seq <= top."to" and w.disabled_at is null and e.at >= w.created_at
        and (w.events ? e.type or w.events ? '*')), '[]'::jsonb) as due
    from cur, top`);
  if (!row) return null;
  return { from: Number(row.from), to: Number(row.to), due: row.due };
}

/** Whether any webhook is enabled: with none, a dispatch pass has nothing to claim. */
export async function anyEnabledWebhook(db: DbOrTx): Promise<boolean> {
  const [row] = await db.execute<{ any: boolean }>(sql`select exists (select 1 from webhooks where disabled_at is null) as "any"`);
  return row?.any ?? false;
}

/**
 * Moves the cursor to the end of the log while no webhook is enabled (checked in the same
 * statement), so the first one registered does not start behind a long stretch of events that
 * were never anyone's. Skips when another dispatcher holds the row.
 */
export async function skipDispatchCursorToEnd(db: DbOrTx) {
  await db.execute(sql`
    update dispatch_cursors d set seq = e.top
    from (select max(seq) as top from events) e
    where d.name = 'webhooks' and e.top > d.seq and not exists (select 1 from webhooks where disabled_at is null)
      and d.ctid = (select ctid from dispatch_cursors where name = 'webhooks' for update skip locked)`);
}

export async function moveDispatchCursor(db: DbOrTx, to: number) {
  await db.execute(sql`update dispatch_cursors set seq = ${to} where name = 'webhooks'`);
}

/** Since when every attempt at this endpoint has failed (null when the last attempt succeeded). */
export async function failingSince(db: DbOrTx, webhookId: string): Promise<Date | null> {
  const [row] = await db.execute<{ since: string | null }>(sql`
    select min(d.created_at)::text as since from webhook_deliveries d
    where d.webhook_id = ${webhookId}
      and d.created_at > coalesce((select max(s.created_at) from webhook_deliveries s
                                   where s.webhook_id = ${webhookId} and s.status_code between 200 and 299), '-infinity')`);
  return row?.since ? new Date(row.since) : null;
}
