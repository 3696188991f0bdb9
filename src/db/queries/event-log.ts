import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client";

/** True when events after `after` may have been deleted by retention: the client must reload state. */
export async function isEventsExpired(db: DbOrTx, after: number): Promise<boolean> {
  const rows = await db.execute<{ pruned_through: string }>(sql`select pruned_through from event_log_state where id = 1`);
  return after < Number(rows[0]?.pruned_through ?? 0);
}

/** Deletes events older than the retention and remembers the highest seq deleted. */
export async function pruneEvents(db: DbOrTx, retentionHours: number): Promise<number> {
  const rows = await db.execute<{ deleted: string; top: string | null }>(sql`
    with gone as (
      delete from events where at < now() - make_interval(hours => ${retentionHours}) returning seq
    ), top as (select count(*) as deleted, max(seq) as top from gone),
    upd as (
      insert into event_log_state (id, pruned_through) select 1, top from top where top is not null
      on conflict (id) do update set pruned_through = greatest(event_log_state.pruned_through, excluded.pruned_through)
    )
    select deleted::text, top::text from top`);
  return Number(rows[0]?.deleted ?? 0);
}
