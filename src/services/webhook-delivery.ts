import type { Job } from "bullmq";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { disableWebhook, failingSince, recordDelivery, type WebhookRow } from "../db/queries/webhooks";
import { adoptDelivery, finishDelivery, loadHandoff, recordDelivered, returnLost, scheduleRetry, type OutboxRow } from "../db/queries/webhook-outbox";
import type { FlowdEvent } from "../event-types";
import { safeFetch } from "../net/safe-fetch";
import { traceHeaders } from "../telemetry";
import { SecretBoxError } from "../secret-box";
import { sign } from "./signing-secrets";
import { secretBox, webhookBackoff } from "./webhooks";
import { addHandoffs } from "./webhook-dispatch";
import type { Producer } from "../queues";

type Deps = { db: Db; config: Config; producer: Producer };
export type DeliveryJob = Job<{ seq: number; webhookId: string; handoff?: number }>;

/** The body every endpoint receives; `data` is what the event carries (the job view, the root's result, the errors). */
const payload = (e: FlowdEvent) =>
  JSON.stringify({ type: e.type, seq: e.seq, at: e.at, data: { ...(e.flowId ? { flowId: e.flowId } : {}), ...(e.status ? { status: e.status } : {}), ...(e.data as object) } });

/** What one attempt came to, as the attempt log records it. */
interface Attempt {
  statusCode: number | null;
  error: string | null;
  durationMs: number;
}

/**
 * One delivery attempt of an outbox row handed to Redis, recorded whatever happens; the row says
 * what comes next. 2xx ends the delivery (its row is marked done); 410 disables the endpoint; any other answer
 * (3xx included: redirects are never followed) or a network error puts the row back to pending,
 * due after the next entry of FLOWD_WEBHOOK_RETRY_SCHEDULE (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
 * by default), until the attempts run out. A job whose row is no longer running under its hand-off
 * (Redis ran a copy the reconciler had already replaced, or the endpoint went) does nothing.
 */
export async function deliver(deps: Deps, job: DeliveryJob) {
  const { seq, webhookId, handoff } = job.data;
  if (handoff === undefined) {
    // Queued before the outbox existed: the row takes it over, with the attempts already made.
    await adoptDelivery(deps.db, webhookId, seq, job.attemptsMade);
    return { adopted: true };
  }
  // A deleted endpoint took its rows with it: like a stale hand-off, nothing is found.
  const found = await loadHandoff(deps.db, webhookId, seq, handoff);
  if (!found) return { skipped: "stale hand-off" };
  const { row, webhook, event } = found;
  if (webhook.disabledAt || !event) {
    await finishDelivery(deps.db, row);
    return { skipped: event ? "disabled" : "event no longer kept" };
  }
  const attempt = await attemptOnce(deps, webhook, event);
  if (!attempt.error) {
    const next = await recordDelivered(deps.db, row, attempt);
    // The slot passed to the endpoint's next row: to Redis now (back to pending should Redis refuse).
    if (next) await addHandoffs(deps.producer, [next]).catch(() => returnLost(deps.db, [next]));
    return { statusCode: attempt.statusCode };
  }
  await recordDelivery(deps.db, { webhookId, eventSeq: seq, attempt: row.attempts + 1, statusCode: attempt.statusCode, durationMs: attempt.durationMs, error: attempt.error });
  return settleFailure(deps, webhook, row, attempt);
}

/** Signs and POSTs the event once. A secret the operator's key cannot open is not the endpoint's fault: nothing is sent. */
async function attemptOnce(deps: Deps, webhook: WebhookRow, event: FlowdEvent): Promise<Attempt & { keyFault?: boolean }> {
  let secret: string;
  try {
    secret = secretBox(deps.config).open(webhook.secret);
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
    return { statusCode: null, durationMs: 0, error: `not sent: ${err.message}`, keyFault: true };
  }
  const body = payload(event);
  // The same for every attempt of one event and endpoint: receivers dedupe by it.
  const id = `msg_${event.seq}_${webhook.id}`;
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
  return { statusCode, error, durationMs: Math.round(performance.now() - started) };
}

/** Moves the row on from a failed attempt: retried later, given up, or dropped with its endpoint disabled. */
async function settleFailure(deps: Deps, webhook: WebhookRow, row: OutboxRow, attempt: Attempt & { keyFault?: boolean }) {
  if (attempt.statusCode === 410) {
    await disableWebhook(deps.db, webhook.id, "the endpoint answered 410 Gone");
    return { statusCode: 410, disabled: true };
  }
  if (!attempt.keyFault) {
    const since = await failingSince(deps.db, webhook.id);
    if (since && Date.now() - since.getTime() >= deps.config.webhookDisableAfterMs) {
      await disableWebhook(deps.db, webhook.id, `every delivery failed since ${since.toISOString()}`);
      return { error: attempt.error, disabled: true };
    }
  }
  const made = row.attempts + 1;
  if (made > deps.config.webhookRetryScheduleMs.length) {
    await finishDelivery(deps.db, row);
    return { error: attempt.error, gaveUp: true };
  }
  await scheduleRetry(deps.db, row, webhookBackoff(deps.config.webhookRetryScheduleMs)(made));
  return { error: attempt.error, retryAfterAttempt: made };
}
