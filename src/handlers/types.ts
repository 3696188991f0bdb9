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
  /**
   * Module handlers on a graph flow's job: adds jobs to the flow (all or nothing; a key this job
   * added before answers its job again, `added: false`, so a handler that runs again adds nothing twice).
   */
  spawn?(jobs: SpawnJob[]): Promise<{ key: string; id: string; jobId: string; status: string; added: boolean }[]>;
  /**
   * Module handlers on a graph flow's job: the results of the flow's jobs `keys` names, by key, once
   * all have ended. Until then the job parks without a worker slot and the handler runs again from
   * its start when they have (the call throws to stop this run: let it through). A job among them
   * that failed or was cancelled fails this attempt for good.
   */
  waitFor?(keys: string[]): Promise<Record<string, unknown>>;
}

/** A job added to a running graph flow: the graph form's job (`dependsOn`: keys of the flow or of the same spawn). */
export interface SpawnJob {
  key: string;
  name: string;
  queue?: string;
  data?: Record<string, unknown>;
  opts?: Record<string, unknown>;
  dependsOn?: string[];
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
