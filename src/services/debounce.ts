import { findJobByIdempotencyKey, type JobRow } from "../db/queries/jobs";
import { upsertDebounced } from "../db/queries/debounce";
import type { ServiceDeps, User } from "./deps";
import { assertSameRequest, isUniqueViolation, requestHash } from "./idempotency";
import { newJobRow, singleJobView, type JobInput, type SingleJobView } from "./jobs";
import { checkJob, singleJobQueue } from "./flow-spec";

/**
 * `opts.debounce: { key, ms }` (README "Job options"). The job is a row held `pending` with
 * `waiting_for = 'debounce'` until `debounce_until`; nothing is in Redis while the window is open,
 * so a crash at any point loses nothing and runs nothing twice: Postgres alone says which create
 * won. Each create with the same user and key within the window replaces the row's data (and name,
 * queue and options), moves the window to `ms` from now and counts one more collapsed create; the
 * enqueuer releases the row when the window ends (src/workers/enqueuer.ts) and it runs once with
 * the newest data. `debounced`: this create joined a job an earlier create opened.
 */
export async function createDebouncedJob(
  deps: ServiceDeps,
  user: User,
  body: JobInput & { opts: { debounce: { key: string; ms: number } } },
  idempotencyKey?: string,
): Promise<{ job: SingleJobView; replayed: boolean; debounced: boolean }> {
  const hash = idempotencyKey ? requestHash(body) : "";
  const replay = async () => {
    const existing = idempotencyKey ? await findJobByIdempotencyKey(deps.db, user.userId, idempotencyKey) : undefined;
    if (!existing) return undefined;
    assertSameRequest(existing.requestHash, hash, existing.id);
    return { job: singleJobView(existing), replayed: true, debounced: false };
  };
  const first = await replay();
  if (first) return first;
  const opts = checkJob(body, "", deps.registry, singleJobQueue(deps.config, body.queue, ""));
  const { key, ms } = body.opts.debounce;
  const row = newJobRow(user.userId, { ...body, opts }, idempotencyKey ? { idempotencyKey, requestHash: hash } : {}, deps.producer);
  let stored: JobRow;
  try {
    stored = await upsertDebounced(deps.db, row, key, ms);
  } catch (err) {
    const raced = isUniqueViolation(err) ? await replay() : undefined;
    if (raced) return raced;
    throw err;
  }
  return { job: singleJobView(stored), replayed: false, debounced: stored.id !== row.id };
}
