import type { LoadedHandler } from "../handlers/loader";

/** A handler that outlived its `timeoutMs`: the attempt fails (and is retried per `opts`). */
export class HandlerTimeout extends Error {
  constructor(readonly ms: number) {
    super(`the handler did not finish within its timeoutMs (${ms} ms)`);
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
 * its timeout or the job's cancel, returns junk — into an attempt's outcome. A handler that ignores
 * its signal keeps running in the background, but its late answer is dropped: the attempt already
 * failed, so a cancelled or timed-out job never turns `completed` afterwards.
 */
export async function runUserCode(handler: LoadedHandler, ctx: Record<string, unknown>, outer: AbortSignal): Promise<unknown> {
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer.reason ?? new Error("cancelled"));
  if (outer.aborted) onOuter();
  else outer.addEventListener("abort", onOuter, { once: true });
  const timer = handler.timeoutMs ? setTimeout(() => controller.abort(new HandlerTimeout(handler.timeoutMs!)), handler.timeoutMs) : null;
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
    const result = await Promise.race([Promise.resolve().then(() => handler.run({ ...ctx, signal: controller.signal })), aborted]);
    checkJson(result);
    return result;
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
