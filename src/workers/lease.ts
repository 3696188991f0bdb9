import type { ReservedSql, Sql } from "postgres";
import type { Logger } from "../log";
import { withTimeout } from "../timeout";

/** A lease query that never answers (a connection half-dead after its backend was killed) counts as lost. */
const bounded = <T>(query: Promise<T>) => withTimeout(query, 10_000, "lease query");

/**
 * Leadership among worker processes through a Postgres session advisory lock on a connection of
 * its own: held while that session lives, and freed by Postgres the moment the process or the
 * connection dies, so another process takes over without any timeout to tune.
 */
export function startLease(deps: {
  sql: Sql;
  key: number;
  name: string;
  log: Logger;
  retryMs?: number;
  checkMs?: number;
  firstTryMs?: number;
  /** Asked before each try: false leaves the lease to another process this time (see recorder-shares.ts). */
  mayTake?: () => boolean;
}) {
  const log = deps.log.child({ lease: deps.name });
  let conn: ReservedSql | null = null;
  let pid = 0;
  let held = false;
  let running = true;
  let releasing = false;
  let wake = () => {};
  const waiting = new Set<() => void>();
  const setHeld = (value: boolean) => {
    held = value;
    if (value) for (const resolve of [...waiting]) resolve();
  };

  const loop = (async () => {
    // A process that should only step in when nobody else records waits before its first try.
    if (deps.firstTryMs)
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, deps.firstTryMs);
      });
    while (running) {
      try {
        if (held && releasing) {
          await bounded(conn!`select pg_advisory_unlock(${deps.key})`);
          setHeld(false);
          log.info("released the lease for another process to take");
        }
        releasing = false;
        if (!held && deps.mayTake && !deps.mayTake()) {
          // Not ours to take now; the connection goes back until it is.
          conn?.release();
          conn = null;
        } else if (!held) {
          conn ??= await deps.sql.reserve();
          const [row] = await bounded(conn<{ ok: boolean; pid: number }[]>`select pg_try_advisory_lock(${deps.key}) as ok, pg_backend_pid() as pid`);
          if (row?.ok) {
            pid = row.pid;
            setHeld(true);
            log.info("took the lease");
          }
        } else {
          conn ??= await deps.sql.reserve();
          // The driver reconnects silently: the same backend pid is the proof the lock is still ours.
          const [row] = await bounded(conn<{ pid: number }[]>`select pg_backend_pid() as pid`);
          if (row?.pid !== pid) throw new Error("the lease's session was replaced");
        }
      } catch (err) {
        if (held) log.warn("lost the lease; will try to take it again", { err: String(err) });
        setHeld(false);
        releasing = false;
        // A session that is only slow still holds the lock: give it up before the connection
        // goes back to the pool, where it would keep the lock with nobody recording.
        if (conn) await bounded(conn`select pg_advisory_unlock_all()`).catch(() => {});
        conn?.release();
        conn = null;
      }
      if (!running) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, held ? (deps.checkMs ?? 2_000) : (deps.retryMs ?? 1_000));
      });
    }
  })();

  return {
    get held() {
      return held;
    },
    /** Lets the lease go at the next check (a process holding more than its share hands one on). */
    release() {
      if (!held) return;
      releasing = true;
      wake();
    },
    /** Resolves once the lease is held, or after `ms` (the caller looks again). */
    whenHeld(ms: number): Promise<void> {
      if (held) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiting.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        waiting.add(done);
      });
    },
    async stop() {
      running = false;
      wake();
      await loop;
      if (held && conn) await conn`select pg_advisory_unlock(${deps.key})`.catch(() => {});
      setHeld(false);
      conn?.release();
      conn = null;
    },
  };
}
export type Lease = ReturnType<typeof startLease>;
