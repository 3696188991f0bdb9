/**
 * The declaration file `flowd types` writes: module authors get types for `ctx` and the default
 * export without installing anything of flowd's. Type-only, so a module that imports it with
 * `import type` runs unchanged in flowd and in a plain `bun`/`node` test.
 */
export const HANDLER_DECLARATIONS = `// Types for flowd handler modules (FLOWD_HANDLERS); written by \`flowd types\`.
// Use:  import type { Handlers } from "./flowd";  export default { ... } satisfies Handlers;

/** JSON, as results must be: no BigInt, functions, symbols, cycles, NaN or Infinity. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface JobIdentity {
  /** flowd's id of the job (the same across retries). */
  id: string;
  /** The BullMQ job id (a retry re-adds the job as \`<id>-<n>\`). */
  jobId: string;
  /** Set for jobs of a flow. */
  flowId?: string;
  name: string;
  queue: string;
}

export interface HandlerContext<D = Record<string, unknown>> {
  /** The job's data, already validated against the handler's \`data\` schema. */
  data: D;
  /** Results of the job's children, keyed by the child's BullMQ job id. */
  children: Record<string, unknown>;
  /** Aborted on cancel, on \`timeoutMs\`, or on a hard shutdown: stop work and reject. */
  signal: AbortSignal;
  /** Attempts that failed before this one, across retries of the flow (0 on the first). */
  attemptsMade: number;
  job: JobIdentity;
  /** Keeps a line with the job (1,000 lines / 64 KiB per job), shown in its view, sent as \`job.log\`. */
  log(line: string): void;
  /** Reports progress (a number or an object), sent as \`job.progress\`. */
  progress(value: number | Record<string, Json>): Promise<void>;
}

export interface Handler<D = any, R = unknown> {
  /** Runs the job; the resolved value (JSON) is its result, a throw fails the attempt. */
  run(ctx: HandlerContext<D>): R | Promise<R>;
  /** A JSON Schema for \`data\` (a TypeBox schema is one); checked by the API when a job is created. */
  data?: Record<string, unknown> | boolean;
  description?: string;
  /** The one queue it runs on (default: every queue flowd's workers consume). */
  queue?: string;
  /** Past this the signal is aborted and the attempt fails (it is retried per the job's \`opts\`). */
  timeoutMs?: number;
  // Defaults for every job of this handler, each used when the job's own \`opts\` leave that field out.
  /** At most \`limit\` jobs with the key run at once (a fixed key, shared by all its jobs; up to 3 keys). */
  concurrency?: ConcurrencyLimit | ConcurrencyLimit[];
  /** At most \`max\` starts per \`perMs\` with the key (a fixed key). */
  rateLimit?: { key: string; max: number; perMs: number };
  /** A job not started within this many ms of becoming ready fails with code \`expired\`. */
  expireAfterMs?: number;
}

/** A per-key concurrency limit: \`key\` 1–128 characters, \`limit\` 1–1000. */
export interface ConcurrencyLimit {
  key: string;
  limit: number;
}

/** A module's default export: handler names (\`[a-z][a-z0-9_.-]{0,63}\`) to handlers. */
export type Handlers = Record<string, Handler>;

/**
 * Throw one of these (or any error with \`permanent = true\`) to fail the job without further attempts:
 *   throw Object.assign(new Error("no such customer"), { permanent: true });
 */
export interface PermanentError extends Error {
  permanent: true;
}

/** A flow stored for every user to run by name: the body of PUT /v1/definitions/:name. */
export interface Definition {
  description?: string;
  /** A JSON Schema every run's input must match. */
  input?: Record<string, unknown> | boolean;
  /** A tree (\`root\`) or a graph (\`jobs\`) as POST /v1/flows takes; \`{ "$input": "/pointer" }\` in data takes the run's input. */
  flow: { name?: string; root?: Record<string, unknown>; jobs?: Record<string, unknown>[] };
}

/** A module's \`definitions\` export:  export const definitions = { ... } satisfies Definitions; */
export type Definitions = Record<string, Definition>;
`;
