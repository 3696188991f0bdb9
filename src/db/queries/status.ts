import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";
import type { StatusChange } from "../../services/status";

/**
 * Applies a batch of changes in one statement. The guard: a change applies only when it is newer
 * than the last one applied (stream position), never revives a cancelled job, and a removal never
 * overwrites a finished job — so duplicates and late arrivals are harmless.
 */
export async function applyStatusChanges(db: DbOrTx, table: "flow_jobs" | "jobs", changes: StatusChange[]) {
  if (changes.length === 0) return 0;
  const payload = changes.map((c) => ({
    job_id: c.jobId,
    status: c.status,
    result: c.status === "completed" ? (c.result ?? null) : null,
    error: c.error ?? null,
    attempts: c.attemptsMade ?? null,
    starts: c.starts,
    pos: c.pos,
  }));
  const rows = await db.execute(sql`
    update ${sql.identifier(table)} as j set
      status = v.status,
      result = case when v.status = 'completed' then v.result else j.result end,
      error = case when v.status = 'failed'
                   then v.error || jsonb_build_object('attemptsMade', j.attempts_base + coalesce(v.attempts, 0))
                   when v.status = 'completed' then null else j.error end,
      -- A failure reports BullMQ's exact count for this run; otherwise every start is an attempt.
      attempts_made = coalesce(j.attempts_base + v.attempts, j.attempts_made + v.starts),
      event_pos = v.pos,
      updated_at = now()
    from jsonb_to_recordset(${JSON.stringify(payload)}::jsonb)
      as v(job_id text, status text, result jsonb, error jsonb, attempts int, starts int, pos bigint)
    where j.job_id = v.job_id and v.pos > j.event_pos and j.status <> 'cancelled'
      and not (v.status = 'cancelled' and j.status in ('completed', 'failed'))
    returning j.id`);
  return rows.length;
}

export async function loadStreamCursors(db: DbOrTx): Promise<Map<string, string>> {
  const rows = await db.execute<{ queue: string; last_id: string }>(sql`select queue, last_id from stream_cursors`);
  return new Map(rows.map((r) => [r.queue, r.last_id]));
}

export async function saveStreamCursors(db: DbOrTx, cursors: Map<string, string>) {
  if (cursors.size === 0) return;
  const payload = [...cursors].map(([queue, last_id]) => ({ queue, last_id }));
  await db.execute(sql`
    insert into stream_cursors (queue, last_id, updated_at)
    select queue, last_id, now() from jsonb_to_recordset(${JSON.stringify(payload)}::jsonb) as v(queue text, last_id text)
    on conflict (queue) do update set last_id = excluded.last_id, updated_at = now()
    -- Several recorders may run; a slower one must not move a cursor back.
    where (split_part(excluded.last_id, '-', 1)::bigint, split_part(excluded.last_id, '-', 2)::bigint)
        > (split_part(stream_cursors.last_id, '-', 1)::bigint, split_part(stream_cursors.last_id, '-', 2)::bigint)`);
}
