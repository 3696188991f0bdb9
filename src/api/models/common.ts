import { t } from "elysia";
import { Type } from "@sinclair/typebox";
import { FLOW_STATUSES, JOB_STATUSES } from "../../statuses";

/**
 * An integer in a JSON body or a response. Elysia's t.Integer is a transform (so that query strings
 * like "3" decode), and one transform anywhere in a schema makes Elysia walk every body or response
 * with TypeBox's uncompiled Value.Decode / Encode: about a tenth of the CPU of answering a 1,000-job
 * flow. JSON has numbers of its own; a plain integer is checked by compiled code, with the same verdict.
 */
export const JsonInteger = Type.Integer;

/** Any string: one that is not an id is simply a resource that does not exist (404). */
export const IdParams = t.Object({ id: t.String() });

/** A string or null. */
export const Nullable = <T extends ReturnType<typeof t.String>>(s: T) => t.Union([s, t.Null()]);

/** The statuses come from src/statuses.ts alone; `$id` names them in the OpenAPI document's components. */
export const JobStatus = t.Union(
  JOB_STATUSES.map((s) => t.Literal(s)),
  { $id: "JobStatus" },
);
export const FlowStatus = t.Union(
  FLOW_STATUSES.map((s) => t.Literal(s)),
  { $id: "FlowStatus" },
);

