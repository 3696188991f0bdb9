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

/** Disables an endpoint and, in the same statement, drops its deliveries still in the outbox (their attempts stay in the log). */
export async function disableWebhook(db: DbOrTx, id: string, reason: string) {
  await db.execute(sql`
    with disabled as (update webhooks set disabled_at = now(), disabled_reason = ${reason} where id = ${id} returning id)
    delete from webhook_outbox where webhook_id in (select id from disabled)`);
}

/** Holds, until the transaction ends, the right to add webhooks for this user: the cap and the duplicate check see every earlier create. */
export async function lockUserWebhooks(db: DbOrTx, userId: string) {
  await db.execute(sql`select pg_advisory_xact_lock(hashtext('flowd.webhooks'), hashtext(${userId}))`);
}

export async function countWebhooks(db: DbOrTx, userId: string): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from webhooks where user_id = ${userId}`);
  return row?.n ?? 0;
}

/** The user's webhook with this URL and the same set of event types, if there is one. */
export async function sameWebhook(db: DbOrTx, userId: string, url: string, events: string[]): Promise<string | undefined> {
  const set = JSON.stringify(events);
  const [row] = await db.execute<{ id: string }>(sql`
    select id from webhooks where user_id = ${userId} and url = ${url} and events @> ${set}::jsonb and events <@ ${set}::jsonb limit 1`);
  return row?.id;
}

export async function recordDelivery(db: DbOrTx, row: typeof webhookDeliveries.$inferInsert) {
  await db.insert(webhookDeliveries).values(row);
}

/**
 * Delivery attempts older than the retention go, like events. Ids grow with time, so the cut is
 * found by walking the primary key to the first attempt still kept, and the delete is an id range.
 */
export async function pruneDeliveries(db: DbOrTx, retentionHours: number): Promise<number> {
  const rows = await db.execute<{ deleted: string }>(sql`
    with edge as (
      select id from webhook_deliveries where created_at >= now() - make_interval(hours => ${retentionHours}) order by id limit 1
    ), gone as (
      delete from webhook_deliveries
      where id < coalesce((select id from edge), 9223372036854775807) and created_at < now() - make_interval(hours => ${retentionHours})
      returning 1
    )
    select count(*)::text as deleted from gone`);
  return Number(rows[0]?.deleted ?? 0);
}

export async function listDeliveries(db: DbOrTx, webhookId: string, q: { limit: number; before?: number }) {
  const conditions = [eq(webhookDeliveries.webhookId, webhookId)];
  if (q.before !== undefined) conditions.push(sql`${webhookDeliveries.id} < ${q.before}`);
  return db.select().from(webhookDeliveries).where(and(...conditions)).orderBy(desc(webhookDeliveries.id)).limit(q.limit);
}

/** The dispatcher's cursor starts at the end of the event log the first time any dispatcher runs. */
export async function ensureDispatchCursor(db: DbOrTx) {
  await db.execute(sql`
    insert into dispatch_cursors (name, seq) select 'webhooks', coalesce(max(seq), 0) from events
    on conflict (name) do nothing`);
}

/**
 * Locks the dispatch cursor for the caller's transaction and returns where it is and the seq of
 * the `limit`-th event after it (or of the last one) to move it to. Null when another dispatcher
 * holds the row (it is doing this very step: no need to wait for it).
 */
export async function claimDispatch(db: DbOrTx, limit: number): Promise<{ from: number; to: number } | null> {
  const [row] = await db.execute<{ from: string; to: string }>(sql`
    with cur as (select seq from dispatch_cursors where name = 'webhooks' for update skip locked)
    select cur.seq::text as "from", coalesce((
      select max(s.seq) from (select seq from events where seq > cur.seq order by seq limit ${limit}) s), cur.seq)::text as "to"
    from cur`);
  if (!row) return null;
  return { from: Number(row.from), to: Number(row.to) };
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
