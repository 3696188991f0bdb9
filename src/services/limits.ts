/**
 * `PUT /v1/limits/:key` and `GET /v1/limits`: a user's per-key limits (src/scheduling/limits.ts),
 * changed at run time. A change applies to the key's waiting jobs at once: the same transaction runs
 * a release pass, so raising a limit lets more go.
 */
import { heldPerKey, lockUserLimits, putLimitKey, runningPerKey, userLimitKeys, type LimitKeyRow } from "../db/queries/limits";
import { addLimitReleased, releaseWithin, ringSweepers } from "../scheduling/limit-release";
import type { ServiceDeps, User } from "./deps";

export interface LimitView {
  key: string;
  concurrency: number | null;
  rateLimit: { max: number; perMs: number } | null;
  /** Released jobs of the key not finished yet (each counts against `concurrency`). */
  running: number;
  /** Jobs held whose turn key this is (their first concurrency key, else their rate limit key). */
  waiting: number;
  updatedAt: string;
}

export interface LimitChange {
  /** Absent: unchanged; null: no concurrency limit. */
  concurrency?: number | null;
  rateLimit?: { max: number; perMs: number } | null;
}

const view = (k: LimitKeyRow, running: Map<string, number>, held: Map<string, number>): LimitView => ({
  key: k.key,
  concurrency: k.concurrency,
  rateLimit: k.rateMax !== null && k.ratePerMs !== null ? { max: k.rateMax, perMs: k.ratePerMs } : null,
  running: running.get(k.key) ?? 0,
  waiting: held.get(k.key) ?? 0,
  updatedAt: k.updatedAt,
});

export async function putLimit(deps: ServiceDeps, user: User, key: string, change: LimitChange): Promise<LimitView> {
  const released = await deps.db.transaction(async (tx) => {
    await lockUserLimits(tx, user.userId);
    const [had] = await userLimitKeys(tx, user.userId, { keys: [key] });
    const rate = change.rateLimit === undefined ? (had?.rateMax ? { max: had.rateMax, perMs: had.ratePerMs! } : null) : change.rateLimit;
    await putLimitKey(tx, user.userId, {
      key,
      concurrency: change.concurrency === undefined ? (had?.concurrency ?? null) : change.concurrency,
      rateMax: rate?.max ?? null,
      ratePerMs: rate?.perMs ?? null,
    });
    return releaseWithin(tx, user.userId);
  });
  await ringSweepers(deps, deps.config.prefix, released);
  await addLimitReleased(deps, released).catch((err) =>
    deps.log.warn("released jobs not yet in Redis; the enqueuer will add them", { err: String(err) }),
  );
  return (await listLimits(deps, user, { keys: [key] })).items[0]!;
}

export async function listLimits(deps: ServiceDeps, user: User, q: { keys?: string[]; after?: string; limit?: number } = {}) {
  const limit = q.limit ?? 100;
  const keys = await userLimitKeys(deps.db, user.userId, { keys: q.keys, after: q.after, limit: limit + 1 });
  const [running, held] = [await runningPerKey(deps.db, user.userId), await heldPerKey(deps.db, user.userId)];
  const items = keys.slice(0, limit).map((k) => view(k, running, held));
  return { items, next: keys.length > limit ? items[items.length - 1]!.key : null };
}
