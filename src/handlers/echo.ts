import { Type } from "@sinclair/typebox";
import { defineHandler } from "./types";

/**
 * Returns its input and what its children returned — in a graph, what the jobs it depends on
 * returned, by key, as `parents` instead (the same results, not twice): the simplest way to see a
 * flow's data move.
 */
export const echo = defineHandler({
  data: Type.Record(Type.String(), Type.Unknown()),
  run: async ({ data, children, parents }) => (parents && Object.keys(parents).length > 0 ? { data, parents } : { data, children }),
});
