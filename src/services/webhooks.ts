import { UnrecoverableError, type Job } from "bullmq";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { eventBySeq } from "../db/queries/events";
import {
  claimDispatch,
  deleteWebhook as deleteWebhookRow,
  disableWebhook,
  failingSince,
  findWebhook,
  findWebhookById,
  insertWebhook,
  listDeliveries,
  listWebhooks,
  moveDispatchCursor,
  plaintextSecrets,
  recordDelivery,
  replaceSecrets,
  type WebhookRow,
} from "../db/queries/webhooks";
import { InvalidInput, NotFound } from "../errors";
import { EVENT_TYPE_NAMES, isEventType, type FlowdEvent } from "../event-types";
import { newId } from "../ids";
import { assertPublicUrl, safeFetch, SafeFetchError } from "../net/safe-fetch";
import { jobTelemetryFrom, traceHeaders } from "../telemetry";
import { createSecretBox, SEALED_PATTERN, SecretBoxError } from "../secret-box";
import type { Producer } from "../queues";
import type { ServiceDeps, User } from "./deps";
import { keysetPage } from "./cursor";
import { newSigningSecret, sign } from "./signing-secrets";

/** The queue of deliveries: one job per event and endpoint. */
export const WEBHOOKS_QUEUE = "webhooks";

export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  disabled: boolean;
  disabledReason: string | null;
  createdAt: string;
}

export const webhookView = (w: WebhookRow): WebhookView => ({
  id: w.id,
  url: w.url,
  events: w.events,
  description: w.description,
  disabled: w.disabledAt !== null,
  disabledReason: w.disabledReason,
  createdAt: w.createdAt.toISOString(),
});

export async function createWebhook(
  deps: Pick<ServiceDeps, "db" | "config">,
  user: User,
  body: { url: string; events: string[]; description?: string },
): Promise<WebhookView & { secret: string }> {
  const unknown = body.events.filter((e) => e !== "*" && !isEventType(e));
  if (unknown.length > 0 || body.events.length === 0)
    throw new InvalidInput(
      `Unknown event type${unknown.length > 1 ? "s" : ""} ${unknown.join(", ") || "(none given)"}; use ${EVENT_TYPE_NAMES.join(", ")} or "*".`,
      [{ path: "/events", message: "unknown event type" }],
      "invalid_events",
    );
  try {
    await assertPublicUrl(body.url, deps.config.allowPrivateUrls);
  } catch (err) {
    if (err instanceof SafeFetchError) throw new InvalidInput(err.message, [{ path: "/url", message: err.message }], "invalid_url");
    throw err;
  }
  const secret = newSigningSecret();
  const row: WebhookRow = {
    id: newId(),
    userId: user.userId,
    url: body.url,
    events: [...new Set(body.events)],
    description: body.description ?? null,
    secret: secretBox(deps.config).seal(secret),
    disabledAt: null,
    disabledReason: null,
    createdAt: new Date(),
  };
  await insertWebhook(deps.db, row);
  return { ...webhookView(row), secret };
}

/**
 * The key is configuration, and config already reaches every service and worker: the box is a pure
 * function of it, so it is made where it is used rather than carried as one more dependency.
 */
const secretBox = (config: Config) => createSecretBox(config.secretKey);

/**
 * With a key, seals the secrets still stored in clear (rows from before the key was set), in pages
 * by id. Safe with several processes at once: each row changes only while it still holds its plaintext.
 */
export async function sealPlaintextSecrets(deps: Pick<ServiceDeps, "db" | "config">, page = 500): Promise<number> {
  const box = secretBox(deps.config);
  if (!box.keyed) return 0;
  let sealed = 0;
  let after = "";
  for (;;) {
    const rows = await plaintextSecrets(deps.db, SEALED_PATTERN, after, page);
    if (rows.length === 0) return sealed;
    sealed += await replaceSecrets(deps.db, rows.map((r) => ({ id: r.id, from: r.secret, to: box.seal(r.secret) })));
    after = rows[rows.length - 1]!.id;
  }
}

export const listUserWebhooks = (deps: Pick<ServiceDeps, "db">, user: User, q: { limit?: number; cursor?: string }) =>
  keysetPage(q, (limit, before) => listWebhooks(deps.db, user.userId, { limit, before }), webhookView);

export async function deleteWebhook(deps: Pick<ServiceDeps, "db">, user: User, id: string) {
  if (!(await deleteWebhookRow(deps.db, user.userId, id))) throw new NotFound("webhook", id);
}

export async function webhookDeliveries(deps: Pick<ServiceDeps, "db">, user: User, id: string, q: { limit?: number; before?: number }) {
  if (!(await findWebhook(deps.db, user.userId, id))) throw new NotFound("webhook", id);
  const limit = q.limit ?? 50;
  const rows = await listDeliveries(deps.db, id, { limit: limit + 1, before: q.before });
  const page = rows.slice(0, limit);
  return {
    items: page.map((d) => ({
      id: d.id,
      eventSeq: d.eventSeq,
      attempt: d.attempt,
      statusCode: d.statusCode,
      durationMs: d.durationMs,
      error: d.error,
      at: d.createdAt.toISOString(),
    })),
    nextBefore: rows.length > limit ? (page[page.length - 1]?.id ?? null) : null,
  };
}

/**
 * Moves the dispatcher over the next events: in one transaction holding the cursor's row lock,
 * enqueues one delivery per matching endpoint (job id `<seq>-<webhook>`, so a crash before the
 * commit re-enqueues nothing new) and advances the cursor. Returns how many were enqueued.
 */
export async function dispatchWebhooks(deps: { db: Db; producer: Producer; config: Config }, batch = 500): Promise<number> {
  return deps.db.transaction(async (tx) => {
    const claimed = await claimDispatch(tx, batch);
    if (!claimed || claimed.to === claimed.from) return 0;
    const { to, due } = claimed;
    if (due.length > 0)
      await deps.producer.at(deps.producer.home).queue(WEBHOOKS_QUEUE).addBulk(
        due.map((d) => ({
          name: "deliver",
          data: { seq: d.seq, webhookId: d.webhook_id },
          opts: {
            jobId: `${d.seq}-${d.webhook_id}`,
            attempts: deps.config.webhookRetryScheduleMs.length + 1,
            backoff: { type: WEBHOOK_BACKOFF },
            removeOnComplete: { age: 24 * 3600 },
            removeOnFail: { age: 7 * 24 * 3600 },
            // The delivery runs in the trace of the request that created the flow, not one of its own.
            ...jobTelemetryFrom(d.traceparent),
          },
        })),
      );
    await moveDispatchCursor(tx, to);
    return due.length;
  });
}

/** The backoff type of deliveries: the webhooks worker's strategy reads FLOWD_WEBHOOK_RETRY_SCHEDULE. */
export const WEBHOOK_BACKOFF = "flowd-webhook-schedule";

/**
 * The delay before retry `attemptsMade` (1 after the first failure): the schedule's entry with ±10%
 * jitter, so endpoints that failed together are not all retried in the same instant.
 */
export const webhookBackoff =
  (scheduleMs: readonly number[], random: () => number = Math.random) =>
  (attemptsMade: number): number => {
    const base = scheduleMs[Math.min(attemptsMade, scheduleMs.length) - 1] ?? 0;
    return Math.round(base * (0.9 + 0.2 * random()));
  };

/** The body every endpoint receives; `data` is what the event carries (the job view, the root's result, the errors). */
const payload = (e: FlowdEvent) =>
  JSON.stringify({ type: e.type, seq: e.seq, at: e.at, data: { ...(e.flowId ? { flowId: e.flowId } : {}), ...(e.status ? { status: e.status } : {}), ...(e.data as object) } });

/**
 * The endpoint's secret in clear. When it cannot be opened the operator's key, not the endpoint, is
 * at fault: the attempt is recorded and retried (a restart with the right key lets a later attempt
 * through), but by itself it never disables the endpoint.
 */
async function openSecret(deps: { db: Db; config: Config }, webhook: WebhookRow, job: Job<{ seq: number }>): Promise<string> {
  try {
    return secretBox(deps.config).open(webhook.secret);
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
    const error = `not sent: ${err.message}`;
    await recordDelivery(deps.db, { webhookId: webhook.id, eventSeq: job.data.seq, attempt: job.attemptsMade + 1, statusCode: null, durationMs: 0, error });
    throw new Error(error);
  }
}

/**
 * One delivery attempt, recorded whatever happens. 2xx succeeds; 410 disables the endpoint; any
 * other answer (3xx included: redirects are never followed) or a network error is retried by BullMQ
 * on FLOWD_WEBHOOK_RETRY_SCHEDULE (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h by default) until the
 * attempts run out.
 */
export async function deliver(deps: { db: Db; config: Config }, job: Job<{ seq: number; webhookId: string }>) {
  const webhook = await findWebhookById(deps.db, job.data.webhookId);
  if (!webhook || webhook.disabledAt) return { skipped: webhook ? "disabled" : "deleted" };
  const event = await eventBySeq(deps.db, job.data.seq);
  if (!event) return { skipped: "event no longer kept" };
  const secret = await openSecret(deps, webhook, job);
  const body = payload(event);
  const id = `msg_${job.data.seq}_${webhook.id}`;
  const timestamp = Math.floor(Date.now() / 1000);
  const started = performance.now();
  let statusCode: number | null = null;
  let error: string | null = null;
  try {
    const res = await safeFetch(
      webhook.url,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...traceHeaders(),
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": sign(secret, id, timestamp, body),
        },
        body,
      },
      { allowPrivate: deps.config.allowPrivateUrls, timeoutMs: 15_000, maxResponseBytes: 64 * 1024 },
    );
    statusCode = res.status;
    if (res.status < 200 || res.status >= 300) error = `answered ${res.status}`;
  } catch (err) {
    error = (err as Error).message;
  }
  await recordDelivery(deps.db, {
    webhookId: webhook.id,
    eventSeq: job.data.seq,
    attempt: job.attemptsMade + 1,
    statusCode,
    durationMs: Math.round(performance.now() - started),
    error,
  });
  if (statusCode === 410) {
    await disableWebhook(deps.db, webhook.id, "the endpoint answered 410 Gone");
    throw new UnrecoverableError("endpoint gone (410); webhook disabled");
  }
  if (error) {
    const since = await failingSince(deps.db, webhook.id);
    if (since && Date.now() - since.getTime() >= deps.config.webhookDisableAfterMs) {
      await disableWebhook(deps.db, webhook.id, `every delivery failed since ${since.toISOString()}`);
      throw new UnrecoverableError(`${error}; webhook disabled after failing since ${since.toISOString()}`);
    }
    throw new Error(error);
  }
  return { statusCode };
}
