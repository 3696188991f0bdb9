/** The longest a long-poll (`?wait=`) may wait, in seconds: SPEC's bound. */
export const LONG_POLL_MAX_S = 60;

/**
 * Lets a long-poll wait for a flow or a job to finish without polling Postgres: whoever learns of
 * a change (the event listener) calls notify with its id; the waiter then re-reads it.
 * `fallbackMs` bounds each wait when no listener runs in this process.
 */
export function createWaiters(fallbackMs = 1_000) {
  const waiting = new Map<string, Set<() => void>>();
  // Long-polls in progress (from before their first read to their answer), and how many ever began:
  // the event listener reads the log only while someone here may need it (events/listener.ts).
  const longPolls = { waiting: 0, began: 0 };
  const wait = (id: string, ms: number): Promise<void> =>
    new Promise((resolve) => {
      const set = waiting.get(id) ?? new Set();
      waiting.set(id, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) waiting.delete(id);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, fallbackMs)));
      set.add(done);
    });
  return {
    longPolls: longPolls as { readonly waiting: number; readonly began: number },
    wait,
    /**
     * A long-poll: reads `load()` again each time `id`'s events wake it (or the fallback passes),
     * until `done` says so or `waitSeconds` pass; undefined when the first read finds nothing. With
     * a wait it counts in `longPolls` from before its first read, so the listener reads the events
     * that can end it.
     */
    async until<T>(id: string, waitSeconds: number, load: () => Promise<T | undefined>, done: (value: T) => boolean): Promise<T | undefined> {
      const run = async () => {
        let value = await load();
        if (value === undefined) return undefined;
        const deadline = Date.now() + waitSeconds * 1000;
        while (!done(value) && Date.now() < deadline) {
          await wait(id, deadline - Date.now());
          value = (await load()) ?? value;
        }
        return value;
      };
      if (waitSeconds <= 0) return run();
      longPolls.waiting++;
      longPolls.began++;
      try {
        return await run();
      } finally {
        longPolls.waiting--;
      }
    },
    notify(id: string) {
      for (const done of [...(waiting.get(id) ?? [])]) done();
    },
    /** Wakes every waiter, for shutdown. */
    releaseAll() {
      for (const set of [...waiting.values()]) for (const done of [...set]) done();
    },
  };
}
export type Waiters = ReturnType<typeof createWaiters>;
