import { t } from "elysia";

export const SignalBody = t.Object(
  { payload: t.Optional(t.Unknown({ description: "becomes the step's result (null when absent); checked against the step's `schema`" })) },
  { additionalProperties: false },
);

export const KeySignalBody = t.Object(
  {
    key: t.String({ minLength: 1, maxLength: 200, description: "the `key` in the signal steps' data" }),
    payload: t.Optional(t.Unknown({ description: "becomes each step's result (null when absent)" })),
  },
  { additionalProperties: false },
);

export const DecisionBody = t.Object({ comment: t.Optional(t.String({ maxLength: 2000 })) }, { additionalProperties: false });

export const WaitAnswerSchema = t.Object({
  id: t.String({ description: "the step's job row id" }),
  jobId: t.String({ description: "its BullMQ id" }),
  accepted: t.Union([t.Literal("signal"), t.Literal("approve"), t.Literal("reject")]),
});

export const KeySignalAnswerSchema = t.Object({
  key: t.String(),
  jobs: t.Array(t.String(), { description: "row ids of the steps this signal completed (none waiting: empty; the signal is not kept)" }),
});

export const CompletionUrlSchema = t.Object({
  id: t.String(),
  jobId: t.String(),
  url: t.String({ description: "POST `{ \"result\": … }` here, without a token, to complete the step once; a newer URL replaces it" }),
});

export const ApprovalSchema = t.Object({
  id: t.String({ description: "the step's job row id: POST /v1/jobs/:id/approve or /reject" }),
  jobId: t.String(),
  flowId: t.Optional(t.String()),
  key: t.Optional(t.String({ description: "a graph flow's step: its key" })),
  owner: t.String({ description: "the user whose flow or job it is" }),
  prompt: t.String(),
  approvers: t.Optional(t.Array(t.String())),
  since: t.String({ format: "date-time", description: "when it started waiting" }),
  until: t.Optional(t.String({ format: "date-time", description: "when it times out" })),
});

export const ApprovalListSchema = t.Object({ items: t.Array(ApprovalSchema) });
