import type { TSchema, Static } from "@sinclair/typebox";
import type { Config } from "../config";

export interface HandlerContext<D> {
  data: D;
  /** Results of the job's children, keyed by the child's BullMQ job id. */
  children: Record<string, unknown>;
  /** A graph flow's job: the results of the jobs it depends on, keyed by their keys (absent otherwise). */
  parents?: Record<string, unknown>;
  /** Aborted when the job is cancelled or the worker shuts down hard. */
  signal: AbortSignal;
  /** Attempts that failed before this one (0 on the first run). */
  attemptsMade: number;
  config: Pick<Config, "allowPrivateUrls">;
  /** Which job this is: flowd's row id, the BullMQ id, its flow (for flow jobs), name and queue. */
  job: JobIdentity;
  /** Keeps a line with the job (bounded per job), in BullMQ's job log too. */
  log(line: string): void;
  /** Reports progress (a number or an object) through BullMQ, recorded like any transition. */
  progress(value: number | Record<string, unknown>): Promise<void>;
  /** For the built-in `http` handler: the signed headers of this attempt's request (workers/http-task.ts). */
  task?: TaskCall;
}

/** One `http` task attempt's request identity: signature, job headers and the callback URL. */
export interface TaskCall {
  headers(body: string): Record<string, string>;
}

export interface JobIdentity {
  id: string;
  jobId: string;
  flowId?: string;
  name: string;
  queue: string;
}

export interface Handler<S extends TSchema = TSchema> {
  /** Validates `data` when the job is created, so a bad job is refused with 400 instead of failing later. */
  data: S;
  run(ctx: HandlerContext<Static<S>>): Promise<unknown>;
}

export const defineHandler = <S extends TSchema>(h: Handler<S>) => h;

/** Thrown by handlers for failures that retrying cannot fix (BullMQ skips the remaining attempts). */
export class PermanentFailure extends Error {}
