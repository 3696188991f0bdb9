import type { LoadedHandler } from "../handlers/loader";

/** An attempt that outlived its `timeoutMs` (the job's, or a module's default): it fails and is retried per `opts`. */
export class HandlerTimeout extends Error {
  constructor(readonly ms: number) {
    super(`timed out after ${ms} ms: the handler did not finish within its timeoutMs (${ms} ms)`);
    this.name = "HandlerTimeout";
  }
}

/** A result BullMQ and Postgres could not store as it is: the attempt fails, saying why. */
export class UnstorableResult extends Error {
  constructor(reason: string) {
    super(`the handler returned a value that is not JSON: ${reason}`);
    this.name = "UnstorableResult";
  }
}

/**
 * The one place that runs a module handler and turns whatever it does — throws, rejects, hangs past
 * its timeout or the job's cancel, returns junk — into an attempt's outcome. `timeoutMs`: the job's
 * own `opts.timeoutMs`, which wins over the module's default.
 */
export async function runUserCode(handler: LoadedHandler, ctx: Record<string, unknown>, outer: AbortSignal, timeoutMs: number | null | undefined = handler.timeoutMs): Promise<unknown> {
  const result = await raceAttempt(outer, timeoutMs, (signal) => handler.run({ ...ctx, signal }));
  checkJson(result);
  return result;
}

/**
 * Runs an attempt under its own signal, aborted by the job's cancel (`outer`) or after `timeoutMs`,
 * and settles as soon as that signal aborts — whether or not the attempt heeds it. An attempt that
 * ignores its signal keeps running in the background, but its late answer goes nowhere: BullMQ has
 * the processor's rejection already, so a cancelled or timed-out job never turns `completed` afterwards.
 */
export async function raceAttempt<T>(outer: AbortSignal, timeoutMs: number | null | undefined, run: (signal: AbortSignal) => T | Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer.reason ?? new Error("cancelled"));
  if (outer.aborted) onOuter();
  else outer.addEventListener("abort", onOuter, { once: true });
  const timer = timeoutMs ? setTimeout(() => controller.abort(new HandlerTimeout(timeoutMs)), timeoutMs) : null;
  let stopWaiting = () => {};
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(controller.signal.reason);
    if (controller.signal.aborted) onAbort();
    else controller.signal.addEventListener("abort", onAbort, { once: true });
    stopWaiting = () => controller.signal.removeEventListener("abort", onAbort);
  });
  aborted.catch(() => {});
  try {
    // `Promise.resolve().then` turns a synchronous throw into a rejection like any other.
    const running = Promise.resolve().then(() => run(controller.signal));
    // The late outcome of an attempt that lost the race is dropped, never unhandled.
    running.catch(() => {});
    return await Promise.race([running, aborted]);
  } finally {
    stopWaiting();
    if (timer) clearTimeout(timer);
    outer.removeEventListener("abort", onOuter);
  }
}

/** Throws UnstorableResult for what JSON cannot hold exactly: BigInt, functions, symbols, cycles, NaN/Infinity. */
export function checkJson(value: unknown) {
  let problem: string | null = null;
  try {
    JSON.stringify(value, (key, v) => {
      if (problem) return undefined;
      const at = key === "" ? "the result" : `'${key}'`;
      if (typeof v === "bigint") problem = `${at} is a BigInt (return it as a string or number)`;
      else if (typeof v === "function") problem = `${at} is a function`;
      else if (typeof v === "symbol") problem = `${at} is a symbol`;
      else if (typeof v === "number" && !Number.isFinite(v)) problem = `${at} is ${v}`;
      // Bun refuses a BigInt member before the replacer sees it, so look one level down.
      else if (v !== null && typeof v === "object")
        for (const [k, member] of Object.entries(v)) if (typeof member === "bigint") problem ??= `'${k}' is a BigInt (return it as a string or number)`;
      return v;
    });
  } catch (err) {
    problem ??= /circular|cyclic/i.test((err as Error).message) ? "it holds a cycle (an object that contains itself)" : (err as Error).message;
  }
  if (problem) throw new UnstorableResult(problem);
}
