import { and, eq, sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import { events, webhookOutbox, webhooks } from "../schema";
import type { FlowdEvent } from "../../event-types";
import { toClientEvent } from "./events";
import type { WebhookRow } from "./webhooks";

/** A delivery handed to Redis: its job id is `<seq>-<webhook>-<handoff>`. */
export interface Handoff {
  seq: number;
  webhookId: string;
  handoff: number;
  traceparent: string | null;
}

/** An outbox row as the worker reads it when its job runs. */
export interface OutboxRow {
  webhookId: string;
  seq: number;
  attempts: number;
  handoffs: number;
  state: "pending" | "running" | "done";
}

/**
 * Writes one row per matching endpoint for the events in (from, to], in the caller's transaction
 * (the one holding the dispatch cursor). A webhook gets the events after its registration, of the
 * types it asked for; each row carries the traceparent of the request that created the event's flow
 * (or single job). Returns how many rows were written.
 */
export async function insertOutboxRows(db: DbOrTx, from: number, to: number): Promise<number> {
  const rows = await db.execute<{ n: number }>(sql`
    with written as (
      insert into webhook_outbox (webhook_id, event_seq, user_id, traceparent)
      select w.id, e.seq, w.user_id, coalesce(f.traceparent, j.traceparent)
      from events e join webhooks w on w.user_id = e.user_id
        left join flows f on f.id = e.flow_id
        left join jobs j on e.flow_id is null and j.id = e.job_id
      where e.seq > ${from} and e.seq <= ${to} and w.disabled_at is null and e.at >= w.created_at
        and (w.events ? e.type or w.events ? '*')
      on conflict do nothing
      returning 1)
    select count(*)::int as n from written`);
  return rows[0]?.n ?? 0;
}

/**
 * Marks due pending rows `running` (the caller hands them to Redis in the same transaction), within
 * the slots: at most `userSlots` running per user, and per endpoint the same, or one while the
 * endpoint has a delivery being retried (an endpoint that fails or hangs is probed one at a time).
 * Within a user, endpoints take turns: each endpoint's first row before any endpoint's second.
 */
export async function releaseDue(db: DbOrTx, userSlots: number, limit: number): Promise<Handoff[]> {
  return db.execute<Handoff & Record<string, unknown>>(sql`
    with busy as (
      select user_id, webhook_id, count(*)::int as n from webhook_outbox where state = 'running' group by user_id, webhook_id),
    busy_user as (select user_id, sum(n)::int as n from busy group by user_id),
    endpoints as (
      select distinct webhook_id from webhook_outbox where state = 'pending' and next_attempt_at <= now()),
    candidates as (
      select c.webhook_id, c.event_seq, c.user_id, c.next_attempt_at,
        row_number() over (partition by c.webhook_id order by c.next_attempt_at, c.event_seq) + coalesce(b.n, 0) as endpoint_slot,
        case when exists (select 1 from webhook_outbox r where r.webhook_id = ep.webhook_id and r.attempts > 0 and r.state <> 'done')
             then 1 else ${userSlots} end as endpoint_cap
      from endpoints ep
      cross join lateral (
        select o.webhook_id, o.event_seq, o.user_id, o.next_attempt_at from webhook_outbox o
        where o.webhook_id = ep.webhook_id and o.state = 'pending' and o.next_attempt_at <= now()
        order by o.next_attempt_at, o.event_seq limit ${userSlots}) c
      left join busy b on b.webhook_id = ep.webhook_id),
    fitting as (
      select c.webhook_id, c.event_seq,
        row_number() over (partition by c.user_id order by c.endpoint_slot, c.next_attempt_at, c.event_seq) + coalesce(u.n, 0) as user_slot
      from candidates c left join busy_user u on u.user_id = c.user_id
      where c.endpoint_slot <= c.endpoint_cap),
    picked as (select webhook_id, event_seq from fitting where user_slot <= ${userSlots} limit ${limit})
    update webhook_outbox o set state = 'running', handoffs = o.handoffs + 1, handed_at = now()
    from picked p
    where o.webhook_id = p.webhook_id and o.event_seq = p.event_seq and o.state = 'pending'
    returning o.event_seq::float8 as seq, o.webhook_id as "webhookId", o.handoffs as handoff, o.traceparent`);
}

/** Milliseconds until the next pending row falls due (null: none waits for a time). */
export async function msUntilNextDue(db: DbOrTx): Promise<number | null> {
  const [row] = await db.execute<{ ms: number | null }>(sql`
    select (extract(epoch from (min(next_attempt_at) - now())) * 1000)::int as ms
    from webhook_outbox where state = 'pending' and next_attempt_at > now()`);
  return row?.ms ?? null;
}

/**
 * What a job needs to run, in one read: its row (only while it is still that hand-off: a stale job
 * finds nothing), the endpoint and the event (undefined when no longer kept).
 */
export async function loadHandoff(
  db: DbOrTx,
  webhookId: string,
  seq: number,
  handoff: number,
): Promise<{ row: OutboxRow; webhook: WebhookRow; event: FlowdEvent | undefined } | undefined> {
  const [found] = await db
    .select({ row: webhookOutbox, webhook: webhooks, event: events })
    .from(webhookOutbox)
    .innerJoin(webhooks, eq(webhooks.id, webhookOutbox.webhookId))
    .leftJoin(events, eq(events.seq, webhookOutbox.eventSeq))
    .where(and(eq(webhookOutbox.webhookId, webhookId), eq(webhookOutbox.eventSeq, seq), eq(webhookOutbox.state, "running"), eq(webhookOutbox.handoffs, handoff)))
    .limit(1);
  if (!found) return undefined;
  const { row, webhook, event } = found;
  return {
    row: { webhookId: row.webhookId, seq: row.eventSeq, attempts: row.attempts, handoffs: row.handoffs, state: row.state },
    webhook,
    event: event ? toClientEvent(event) : undefined,
  };
}

/**
 * The attempt on record and its delivery done, in one statement (the answer was 2xx); only the
 * current hand-off may end it. Its slot passes straight to the endpoint's next due row, which is
 * returned to be added to Redis — the user's and the endpoint's counts stay as they were, so no slot
 * is exceeded — but only while no other endpoint of the user has a row due (then the dispatcher
 * shares the slot out by turns) and the endpoint has nothing being retried.
 */
export async function recordDelivered(
  db: DbOrTx,
  row: Pick<OutboxRow, "webhookId" | "seq" | "handoffs" | "attempts">,
  attempt: { statusCode: number | null; durationMs: number; error: string | null },
): Promise<Handoff | undefined> {
  const [next] = await db.execute<Handoff & Record<string, unknown>>(sql`
    with logged as (
      insert into webhook_deliveries (webhook_id, event_seq, attempt, status_code, duration_ms, error)
      values (${row.webhookId}, ${row.seq}, ${row.attempts + 1}, ${attempt.statusCode}, ${attempt.durationMs}, ${attempt.error})),
    done as (
      update webhook_outbox set state = 'done', finished_at = now(), handed_at = null
      where webhook_id = ${row.webhookId} and event_seq = ${row.seq} and state = 'running' and handoffs = ${row.handoffs}
      returning user_id),
    following as (
      select o.webhook_id, o.event_seq from webhook_outbox o, done
      where o.webhook_id = ${row.webhookId} and o.state = 'pending' and o.next_attempt_at <= now()
        and not exists (select 1 from webhook_outbox p where p.user_id = done.user_id and p.webhook_id <> ${row.webhookId}
                          and p.state = 'pending' and p.next_attempt_at <= now())
        and not exists (select 1 from webhook_outbox r where r.webhook_id = ${row.webhookId} and r.attempts > 0 and r.state <> 'done')
      order by o.next_attempt_at, o.event_seq limit 1
      for update of o skip locked)
    update webhook_outbox o set state = 'running', handoffs = o.handoffs + 1, handed_at = now()
    from following f where o.webhook_id = f.webhook_id and o.event_seq = f.event_seq and o.state = 'pending'
    returning o.event_seq::float8 as seq, o.webhook_id as "webhookId", o.handoffs as handoff, o.traceparent`);
  return next;
}

/** Ends a delivery (answered 2xx, attempts ran out, endpoint or event gone). Only the current hand-off may. */
export async function finishDelivery(db: DbOrTx, row: Pick<OutboxRow, "webhookId" | "seq" | "handoffs">): Promise<boolean> {
  const done = await db.execute(sql`
    update webhook_outbox set state = 'done', finished_at = now(), handed_at = null
    where webhook_id = ${row.webhookId} and event_seq = ${row.seq} and state = 'running' and handoffs = ${row.handoffs}
    returning 1`);
  return done.length > 0;
}

/** Deletes up to `limit` rows that ended more than `keepMs` ago. Returns how many. */
export async function pruneDone(db: DbOrTx, keepMs: number, limit: number): Promise<number> {
  const gone = await db.execute(sql`
    delete from webhook_outbox where ctid in (
      select ctid from webhook_outbox where state = 'done' and finished_at < now() - make_interval(secs => ${keepMs / 1000}) limit ${limit})
    returning 1`);
  return gone.length;
}

/** After a failed attempt: back to pending, due after `delayMs`, with one more attempt counted. Only the current hand-off may. */
export async function scheduleRetry(db: DbOrTx, row: Pick<OutboxRow, "webhookId" | "seq" | "handoffs">, delayMs: number): Promise<boolean> {
  const moved = await db.execute(sql`
    update webhook_outbox set state = 'pending', attempts = attempts + 1, handed_at = null,
      next_attempt_at = now() + make_interval(secs => ${delayMs / 1000})
    where webhook_id = ${row.webhookId} and event_seq = ${row.seq} and state = 'running' and handoffs = ${row.handoffs}
    returning 1`);
  return moved.length > 0;
}

/** A disabled endpoint's deliveries are dropped (their attempts stay in the log). */
export async function dropDeliveries(db: DbOrTx, webhookId: string) {
  await db.execute(sql`delete from webhook_outbox where webhook_id = ${webhookId}`);
}

/**
 * A delivery job from before the outbox (data without a hand-off): its row is written as pending,
 * due now, with the attempts BullMQ already made, so the outbox runs it from here.
 */
export async function adoptDelivery(db: DbOrTx, webhookId: string, seq: number, attempts: number) {
  await db.execute(sql`
    insert into webhook_outbox (webhook_id, event_seq, user_id, attempts)
    select id, ${seq}, user_id, ${attempts} from webhooks where id = ${webhookId} and disabled_at is null
    on conflict do nothing`);
}

/** Rows handed to Redis more than `graceMs` ago, oldest first: what Redis should still hold. */
export async function runningSince(db: DbOrTx, graceMs: number, limit: number): Promise<Handoff[]> {
  return db.execute<Handoff & Record<string, unknown>>(sql`
    select event_seq::float8 as seq, webhook_id as "webhookId", handoffs as handoff, traceparent from webhook_outbox
    where state = 'running' and handed_at < now() - make_interval(secs => ${graceMs / 1000})
    order by handed_at limit ${limit}`);
}

/**
 * Rows whose job Redis lost go back to pending, keeping their due time (already passed: they were
 * running), so the dispatcher hands them out again at once and no sooner than their schedule said.
 * Only while still that hand-off. Returns how many.
 */
export async function returnLost(db: DbOrTx, lost: Handoff[]): Promise<number> {
  if (lost.length === 0) return 0;
  const values = sql.join(lost.map((l) => sql`(${l.webhookId}, ${l.seq}::bigint, ${l.handoff}::int)`), sql`, `);
  const back = await db.execute(sql`
    update webhook_outbox o set state = 'pending', handed_at = null
    from (values ${values}) as v(webhook_id, seq, handoff)
    where o.webhook_id = v.webhook_id and o.event_seq = v.seq and o.state = 'running' and o.handoffs = v.handoff
    returning 1`);
  return back.length;
}

/** Undelivered rows by state: `pending` waits in Postgres (for its time or a slot), `running` is in Redis. */
export async function outboxCounts(db: DbOrTx): Promise<{ state: string; n: number }[]> {
  return db.execute<{ state: string; n: number }>(sql`
    select s.state, (select count(*)::int from webhook_outbox o where o.state = s.state) as n
    from (values ('pending'), ('running')) as s(state)`);
}
