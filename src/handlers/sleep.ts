import { Type } from "@sinclair/typebox";
import { defineHandler } from "./types";
import { WaitRequest } from "./wait-steps";

export const MAX_SLEEP_MS = 24 * 60 * 60 * 1000;

/** From a minute on, a sleep parks like a `wait` step (no worker slot, survives restarts) instead of holding its slot. */
export const DURABLE_SLEEP_MS = 60_000;

/** Waits `ms`; a cancel aborts the wait at once instead of holding a worker slot. */
export const sleep = defineHandler({
  data: Type.Object({ ms: Type.Integer({ minimum: 0, maximum: MAX_SLEEP_MS }) }, { additionalProperties: true }),
  run: ({ data, signal }) =>
    data.ms >= DURABLE_SLEEP_MS ? Promise.resolve(new WaitRequest("sleep", new Date(Date.now() + data.ms), { result: { slept: data.ms } })) :
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason ?? new Error("cancelled"));
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve({ slept: data.ms });
      }, data.ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason instanceof Error ? signal.reason : new Error("cancelled"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
    }),
});
