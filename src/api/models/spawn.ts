import { t } from "elysia";
import { GraphJobSchema } from "./flows";

export const SpawnBody = t.Object(
  {
    lockToken: t.String({
      minLength: 1,
      maxLength: 200,
      description: "the lock token the running attempt holds (BullMQ: the processor's `token` argument, or `job.token`); only that attempt may add jobs or join",
    }),
    jobs: t.Optional(
      t.Array(GraphJobSchema, {
        minItems: 1,
        maxItems: 100_000,
        description: "jobs to add to the job's graph flow: new keys; dependsOn names jobs of the flow or of this spawn. A key this job added before answers that job again (added: false)",
      }),
    ),
    waitFor: t.Optional(
      t.Array(t.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: 100_000,
        description: "keys of the flow's jobs (or of this spawn) to join on: answered with their results once all have ended, else the job is parked until they have",
      }),
    ),
  },
  { additionalProperties: false, $id: "SpawnRequest" },
);

export const SpawnAnswerSchema = t.Object(
  {
    jobs: t.Array(
      t.Object({
        key: t.String(),
        id: t.String({ description: "the row id (stable across retries)" }),
        jobId: t.String({ description: "the BullMQ id" }),
        status: t.String({ description: "its status now" }),
        added: t.Boolean({ description: "false: this job had added it before (a run again after a join)" }),
      }),
    ),
    parked: t.Boolean({
      description: "true: the join is not over and flowd moved the job to BullMQ's delayed set under your lock token; end this run without completing it (Node: `throw new DelayedError()`). It runs again when the jobs have ended",
    }),
    results: t.Optional(t.Record(t.String(), t.Unknown(), { description: "the joined jobs' results by key (when not parked)" })),
    failed: t.Optional(
      t.Array(t.Object({ key: t.String(), status: t.String(), error: t.Unknown() }), { description: "joined jobs that ended without completing" }),
    ),
  },
  { $id: "SpawnAnswer" },
);

/** An http task's spawn through its callback URL: the token is in the path. */
export const TaskSpawnBody = t.Object(
  { jobs: t.Array(GraphJobSchema, { minItems: 1, maxItems: 100_000, description: "jobs to add to the task's graph flow (see SpawnRequest)" }) },
  { additionalProperties: false, $id: "TaskSpawnRequest" },
);

export const TaskSpawnAnswer = t.Object(
  {
    jobs: t.Array(
      t.Object({ key: t.String(), id: t.String(), jobId: t.String(), status: t.String(), added: t.Boolean() }),
    ),
  },
  { $id: "TaskSpawnAnswer" },
);
