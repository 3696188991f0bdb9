/**
 * Group commit for creates: requests that arrive while earlier ones are being written share one
 * write. A request that finds a free slot is written at once (no timer, no added latency when
 * alone); the ones that arrive meanwhile wait only for a slot, then go together, so under load
 * sixteen concurrent creates cost a few inserts, commits and Redis round trips instead of sixteen.
 */
export interface GroupCommitOptions {
  /** Writes in flight at once; more arrivals wait and join the next write. */
  slots: number;
  /** The most items one write takes. */
  maxBatch: number;
}

export function createGroupCommit<T, R>(write: (items: T[]) => Promise<R[]>, opts: GroupCommitOptions) {
  type Waiting = { item: T; resolve: (r: R) => void; reject: (err: unknown) => void };
  const queue: Waiting[] = [];
  let busy = 0;
  const stats = { writes: 0, items: 0 };

  const next = () => {
    while (busy < opts.slots && queue.length > 0) {
      const batch = queue.splice(0, opts.maxBatch);
      busy++;
      stats.writes++;
      stats.items += batch.length;
      write(batch.map((w) => w.item))
        .then(
          (results) => batch.forEach((w, i) => w.resolve(results[i]!)),
          (err) => batch.forEach((w) => w.reject(err)),
        )
        .finally(() => {
          busy--;
          next();
        });
    }
  };

  return {
    stats,
    submit(item: T): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        next();
      });
    },
  };
}
export type GroupCommit<T, R> = ReturnType<typeof createGroupCommit<T, R>>;
