import { Type } from "@sinclair/typebox";
import { defineHandler } from "./types";

/** Returns its input and what its children returned: the simplest way to see a flow's data move. */
export const echo = defineHandler({
  data: Type.Record(Type.String(), Type.Unknown()),
  run: async ({ data, children }) => ({ data, children }),
});
