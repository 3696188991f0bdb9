/** Polls `check` until it returns a truthy value or `ms` pass; the failure names what was awaited. */
export async function waitFor<T>(check: () => T | Promise<T>, ms = 10_000, what = "condition", everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${String(last)})`);
    await Bun.sleep(everyMs);
  }
}
