/** Runs `pass` now and then every `intervalMs` until stopped; a failed pass is reported and retried next time. */
export function startLoop(intervalMs: number, pass: () => Promise<void>, onError: (err: unknown) => void) {
  let running = true;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (running) {
      try {
        await pass();
      } catch (err) {
        onError(err);
      }
      if (!running) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, intervalMs);
      });
    }
  })();
  return {
    async stop() {
      running = false;
      wake();
      await loop;
    },
  };
}
