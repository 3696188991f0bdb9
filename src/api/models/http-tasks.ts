import { t } from "elysia";

export const SigningSecretSchema = t.Object(
  {
    secret: t.String({ description: "whsec_ + base64: verify `http` task requests with it (Standard Webhooks)" }),
    previousSecret: t.Union([t.Null(), t.String()], { description: "the secret a rotation replaced, still signing beside the new one until previousValidUntil" }),
    previousValidUntil: t.Union([t.Null(), t.String({ format: "date-time" })]),
  },
  { $id: "SigningSecret" },
);

export const CallbackParams = t.Object({ token: t.String({ maxLength: 128, description: "the capability from flowd-callback-url" }) });

export const CompleteCallbackBody = t.Object(
  { result: t.Optional(t.Unknown({ description: "the job's result (any JSON; null when absent), passed to its parent like any child's" })) },
  { additionalProperties: false, $id: "CompleteCallback" },
);

export const FailCallbackBody = t.Object(
  {
    message: t.String({ minLength: 1, maxLength: 4096 }),
    permanent: t.Optional(t.Boolean({ description: "true: no further attempts; otherwise retried per the job's opts (with a new call)" })),
  },
  { additionalProperties: false, $id: "FailCallback" },
);

export const CallbackAnswerSchema = t.Object(
  {
    jobId: t.String({ description: "the BullMQ id of the job" }),
    accepted: t.Union([t.Literal("complete"), t.Literal("fail"), t.Literal("heartbeat")]),
    heartbeatBy: t.Optional(t.String({ format: "date-time", description: "heartbeats: when the next heartbeat or the callback is due" })),
  },
  { $id: "CallbackAnswer" },
);
