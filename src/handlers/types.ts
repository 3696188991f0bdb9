import type { TSchema, Static } from "@sinclair/typebox";
import type { Config } from "../config";

export interface HandlerContext<D> {
  data: D;
  /** Results of the job's children, keyed by the child's BullMQ job id. */
  children: Record<string, unknown>;
  /** Aborted when the job is cancelled or the worker shuts down hard. */
  signal: AbortSignal;
  /** Attempts that failed before this one (0 on the first run). */
  attemptsMade: number;
  config: Pick<Config, "allowPrivateUrls">;
}

export interface Handler<S extends TSchema = TSchema> {
  /** Validates `data` when the job is created, so a bad job is refused with 400 instead of failing later. */
  data: S;
  run(ctx: HandlerContext<Static<S>>): Promise<unknown>;
}

export const defineHandler = <S extends TSchema>(h: Handler<S>) => h;

/** Thrown by handlers for failures that retrying cannot fix (BullMQ skips the remaining attempts). */
export class PermanentFailure extends Error {}
