import { t } from "elysia";
import type { FlowSummary, FlowView } from "../../services/flow-views";
import { FlowStatus, JobStatus, JsonInteger } from "./common";
import { MAX_CONCURRENCY_KEYS, MAX_LIMIT, MAX_LIMIT_KEY_LENGTH, MAX_RATE } from "../../scheduling/limits";
import { MAX_DEBOUNCE_KEY_CHARS, MAX_DEBOUNCE_MS, MAX_EXPIRE_AFTER_MS, MAX_TIMEOUT_MS, MIN_DEBOUNCE_MS } from "../../job-opts";

export { FlowStatus, JobStatus };

const DAY_MS = 24 * 60 * 60 * 1000;

/** A per-key limit's key: a user's own name for a tenant, an account, a partner API. */
export const LimitKey = t.String({ minLength: 1, maxLength: MAX_LIMIT_KEY_LENGTH, description: `1 to ${MAX_LIMIT_KEY_LENGTH} characters` });

export const ConcurrencyLimitSchema = t.Object(
  { key: LimitKey, limit: JsonInteger({ minimum: 1, maximum: MAX_LIMIT, description: "jobs of the key running at once" }) },
  { additionalProperties: false, $id: "ConcurrencyLimit" },
);

export const RateLimitSchema = t.Object(
  {
    key: LimitKey,
    max: JsonInteger({ minimum: 1, maximum: MAX_RATE, description: "starts per perMs" }),
    perMs: JsonInteger({ minimum: 1, maximum: DAY_MS }),
  },
  { additionalProperties: false, $id: "RateLimit", description: "at most `max` starts per `perMs` per key, spread evenly" },
);

/** Job options a client may set for any job; anything else is refused rather than passed to BullMQ. */
export const jobOptsFields = {
  attempts: t.Optional(JsonInteger({ minimum: 1, maximum: 100 })),
  backoff: t.Optional(
    t.Object(
      { type: t.Union([t.Literal("fixed"), t.Literal("exponential")]), delay: JsonInteger({ minimum: 0, maximum: DAY_MS }) },
      { additionalProperties: false },
    ),
  ),
  delay: t.Optional(JsonInteger({ minimum: 0, maximum: 365 * DAY_MS })),
  priority: t.Optional(JsonInteger({ minimum: 0, maximum: 2_097_152 })),
  ...timeoutOptsFields(),
  // Per-key limits (src/scheduling/limits.ts).
  concurrency: t.Optional(
    t.Union([ConcurrencyLimitSchema, t.Array(ConcurrencyLimitSchema, { minItems: 1, maxItems: MAX_CONCURRENCY_KEYS })], {
      description: `at most \`limit\` jobs with the key run at once; up to ${MAX_CONCURRENCY_KEYS} keys (array form)`,
    }),
  ),
  rateLimit: t.Optional(RateLimitSchema),
};

/** `timeoutMs` and `expireAfterMs` (README "Job options"), for every job. */
function timeoutOptsFields() {
  return {
    timeoutMs: t.Optional(
      JsonInteger({
        minimum: 1,
        maximum: MAX_TIMEOUT_MS,
        description: "ends a running attempt after this many ms (1 ms to 24 h): the handler's signal aborts, an http call is cut, and the attempt fails (retried per attempts/backoff); a late result is dropped",
      }),
    ),
    expireAfterMs: t.Optional(
      JsonInteger({
        minimum: 1,
        maximum: MAX_EXPIRE_AFTER_MS,
        description: "a job that has not started within this many ms (1 ms to 7 days) of becoming ready fails with error code `expired`, no attempt made",
      }),
    ),
  };
}

/** `debounce` (single jobs only): creates with the same key within `ms` of the last one collapse into one run with the newest data. */
export const DebounceSchema = t.Object(
  {
    key: t.String({ minLength: 1, maxLength: MAX_DEBOUNCE_KEY_CHARS, description: `1 to ${MAX_DEBOUNCE_KEY_CHARS} characters; per user` }),
    ms: JsonInteger({ minimum: MIN_DEBOUNCE_MS, maximum: MAX_DEBOUNCE_MS, description: `the quiet time (${MIN_DEBOUNCE_MS} ms to 1 h) after the last create before the job runs` }),
  },
  { additionalProperties: false },
);

/** A flow job's options add the failure policy towards its parent. */
export const JobOptsSchema = t.Object(
  {
    ...jobOptsFields,
    failParentOnFailure: t.Optional(t.Literal(true, { description: "the default: a failed job fails its parent" })),
    ignoreDependencyOnFailure: t.Optional(t.Boolean()),
    continueParentOnFailure: t.Optional(t.Boolean()),
    removeDependencyOnFailure: t.Optional(t.Boolean()),
  },
  { additionalProperties: false, $id: "FlowJobOpts" },
);

export const JobData = t.Record(t.String(), t.Unknown(), { description: "the handler's input; a JSON object" });

export const FlowNodeSchema = t.Recursive(
  (Self) =>
    t.Object(
      {
        name: t.String({ minLength: 1, maxLength: 100, description: "handler: echo, sleep, http or fail" }),
        queue: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "one of FLOWD_QUEUES (default: the first)" })),
        data: t.Optional(JobData),
        opts: t.Optional(JobOptsSchema),
        children: t.Optional(t.Array(Self, { maxItems: 100_000 })),
      },
      { additionalProperties: false },
    ),
  { $id: "FlowNode" },
);

/** One job of a graph flow: a flow node without children, named by a key, with the keys it depends on. */
export const GraphJobSchema = t.Object(
  {
    key: t.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.-]{1,64}$", description: "unique in the flow; dependents receive this job's result under it" }),
    name: t.String({ minLength: 1, maxLength: 100, description: "handler: echo, sleep, http or fail" }),
    queue: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "one of FLOWD_QUEUES (default: the first) or FLOWD_EXTERNAL_QUEUES" })),
    data: t.Optional(JobData),
    opts: t.Optional(JobOptsSchema),
    dependsOn: t.Optional(
      t.Array(t.String({ minLength: 1, maxLength: 64 }), {
        maxItems: 100_000,
        description: "keys of the jobs that must complete before this one runs; their results reach it keyed by key",
      }),
    ),
  },
  { additionalProperties: false, $id: "GraphJob" },
);

const flowName = t.String({ minLength: 1, maxLength: 200 });
/**
 * A tree (`root`, each job with one parent) or a graph (`jobs`, each naming what it depends on):
 * one object with both optional rather than a union, so a bad tree's error names the field that is
 * wrong instead of "should be one of 'object', 'object'"; the service requires exactly one of them.
 */
export const CreateFlowBody = t.Object(
  {
    name: flowName,
    root: t.Optional(FlowNodeSchema),
    jobs: t.Optional(t.Array(GraphJobSchema, { minItems: 1, maxItems: 100_000, description: "a graph's jobs; send either this or root" })),
  },
  { additionalProperties: false, $id: "CreateFlow", description: "Send exactly one of root (a tree) or jobs (a graph)." },
);

/** Every job view's fields, flow job or single job. */
export const jobViewFields = {
  id: t.String(),
  jobId: t.String({ description: "the BullMQ job id (changes when a retry re-adds the job)" }),
  name: t.String(),
  queueName: t.String(),
  status: JobStatus,
  data: t.Record(t.String(), t.Unknown()),
  opts: t.Record(t.String(), t.Unknown()),
  result: t.Unknown(),
  error: t.Union([
    t.Null(),
    t.Object({
      message: t.String(),
      stack: t.Optional(t.String()),
      attemptsMade: t.Number(),
      code: t.Optional(t.String({ description: "set for failures flowd names: `expired` (the job did not start within its opts.expireAfterMs; no attempt was made), `timed_out` (a signal or approval step's timeoutMs passed), `rejected` (an approval step was rejected)" })),
    }),
  ]),
  attemptsMade: JsonInteger(),
  createdAt: t.String({ format: "date-time" }),
  updatedAt: t.String({ format: "date-time" }),
  key: t.Optional(t.String({ description: "a graph flow's job: its key" })),
  callbackUntil: t.Optional(
    t.String({ format: "date-time", description: "an `http` task whose service answered 202: it waits (holding no worker) for its callback until then; absent otherwise" }),
  ),
  waitingFor: t.Optional(
    t.Object(
      {
        reason: t.String({ description: "`sleep`, `signal` or `approval` for a parked wait step (held jobs show their own reasons)" }),
        key: t.Optional(t.String()),
        until: t.Optional(t.String({ format: "date-time", description: "when the wait ends by itself (a sleep wakes, a timeout fails the step)" })),
      },
      { description: "why the job waits, holding no worker slot; absent when it does not" },
    ),
  ),
  progress: t.Optional(t.Unknown({ description: "the last value the handler passed to ctx.progress (BullMQ updateProgress); absent until one" })),
  log: t.Optional(
    t.Object(
      {
        lines: t.Array(t.Object({ at: t.String({ format: "date-time" }), line: t.String() })),
        dropped: JsonInteger({ description: "lines beyond the per-job bound (1,000 lines / 64 KiB) that were not kept" }),
      },
      { description: "the handler's ctx.log lines; absent until one" },
    ),
  ),
};

export const JobNodeSchema = t.Recursive((Self) => t.Object({ ...jobViewFields, children: t.Array(Self) }), {
  $id: "JobNode",
});

const flowSummaryFields = {
  id: t.String(),
  name: t.String(),
  status: FlowStatus,
  jobCount: JsonInteger(),
  createdAt: t.String({ format: "date-time" }),
  updatedAt: t.String({ format: "date-time" }),
  finishedAt: t.Union([t.Null(), t.String({ format: "date-time" })]),
  definition: t.Optional(
    t.Object({ name: t.String(), version: JsonInteger() }, { description: "a definition's run: the definition and the version it ran (absent otherwise)" }),
  ),
  scheduleId: t.Optional(t.String({ description: "the schedule whose firing started it" })),
  eventId: t.Optional(t.String({ description: "the published event (its id in GET /v1/published) whose trigger started it" })),
};
/** Typed as the service's view, whose status is the column's text (always one of FLOW_STATUSES). */
export const FlowSummarySchema = t.Unsafe<FlowSummary>(t.Object(flowSummaryFields, { $id: "FlowSummary" }));
export const GraphJobViewSchema = t.Object(
  {
    ...jobViewFields,
    key: t.String(),
    dependsOn: t.Array(t.String(), { description: "keys of the jobs it depends on" }),
    waitingFor: t.Optional(
      t.Object(
        { reason: t.String({ description: "`dependencies`: held until they are done; `children`: running, parked on a join" }), keys: t.Optional(t.Array(t.String())) },
        { description: "why the job waits (absent when nothing holds it); `keys`: the jobs a join waits for" },
      ),
    ),
    spawnedBy: t.Optional(t.String({ description: "added while the flow ran, by the job with this key" })),
  },
  { $id: "GraphJobView" },
);
/** Typed as the service's view: Elysia cannot infer through the recursive job node. A tree flow has `root`, a graph flow `jobs`. */
export const FlowViewSchema = t.Unsafe<FlowView>(
  t.Object(
    {
      ...flowSummaryFields,
      root: t.Optional(JobNodeSchema),
      jobs: t.Optional(t.Array(GraphJobViewSchema, { description: "a graph flow's jobs, in the order given (instead of root)" })),
    },
    { $id: "Flow" },
  ),
);
export const FlowPageSchema = t.Object({ items: t.Array(FlowSummarySchema), nextCursor: t.Union([t.Null(), t.String()]) }, { $id: "FlowPage" });

