import { Type } from "@sinclair/typebox";
import { defineHandler } from "./types";

/** Fails on purpose: every attempt, or only the first `times` — for testing retries and failure policies. */
export const fail = defineHandler({
  data: Type.Object(
    { message: Type.Optional(Type.String({ maxLength: 10_000 })), times: Type.Optional(Type.Integer({ minimum: 0 })) },
    { additionalProperties: true },
  ),
  run: async ({ data, attemptsMade }) => {
    if (data.times !== undefined && attemptsMade >= data.times) return { failedTimes: data.times };
    throw new Error(data.message ?? "failed on purpose (fail handler)");
  },
});
