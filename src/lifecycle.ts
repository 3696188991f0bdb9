import type { Logger } from "./log";

export type Stop = () => Promise<void> | void;

/**
 * Collects the stop() of everything started, and runs them in reverse order exactly once.
 * A second call returns the same promise, so a second signal cannot start a second shutdown.
 */
export function createLifecycle(log: Logger) {
  const stops: { name: string; stop: Stop }[] = [];
  let stopping: Promise<void> | undefined;
  return {
    add(name: string, stop: Stop) {
      stops.push({ name, stop });
    },
    get stopping() {
      return stopping !== undefined;
    },
    stopAll(): Promise<void> {
      stopping ??= (async () => {
        for (const { name, stop } of stops.reverse()) {
          try {
            await stop();
            log.debug("stopped", { component: name });
          } catch (err) {
            log.warn("stop failed", { component: name, err });
          }
        }
      })();
      return stopping;
    },
  };
}
export type Lifecycle = ReturnType<typeof createLifecycle>;
