/**
 * Lets a long-poll wait for a flow to change without polling Postgres: whoever learns of a change
 * (the event listener) calls notify; the waiter then re-reads the flow. `fallbackMs` bounds the
 * wait when no listener runs in this process.
 */
export function createFlowWaiters(fallbackMs = 1_000) {
  const waiting = new Map<string, Set<() => void>>();
  return {
    wait(flowId: string, ms: number): Promise<void> {
      return new Promise((resolve) => {
        const set = waiting.get(flowId) ?? new Set();
        waiting.set(flowId, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0) waiting.delete(flowId);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, Math.min(ms, fallbackMs)));
        set.add(done);
      });
    },
    notify(flowId: string) {
      for (const done of [...(waiting.get(flowId) ?? [])]) done();
    },
    /** Wakes every waiter, for shutdown. */
    releaseAll() {
      for (const set of [...waiting.values()]) for (const done of [...set]) done();
    },
  };
}
export type FlowWaiters = ReturnType<typeof createFlowWaiters>;
