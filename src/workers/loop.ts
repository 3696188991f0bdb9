/**
 * Runs `pass` now and then every `intervalMs` until stopped; a failed pass is reported and retried
 * next time. `wake()` runs the next pass soon (a doorbell): a ring during a pass makes the loop go
 * round again after only `minGapMs`, so a ring is never lost, and a burst of rings costs at most
 * one pass per `minGapMs` rather than one per ring.
 */
export function startLoop(intervalMs: number, pass: () => Promise<void>, onError: (err: unknown) => void, minGapMs = 0) {
  let running = true;
  let rung = false;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (running) {
      rung = false;
      try {
        await pass();
      } catch (err) {
        onError(err);
      }
      if (!running) break;
      if (rung) {
        if (minGapMs > 0) await new Promise<void>((resolve) => setTimeout(resolve, minGapMs));
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, intervalMs);
      });
    }
  })();
  return {
    wake() {
      rung = true;
      wake();
    },
    async stop() {
      running = false;
      wake();
      await loop;
    },
  };
}
