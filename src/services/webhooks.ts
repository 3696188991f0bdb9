import type { Config } from "../config";
import {
  countWebhooks,
  deleteWebhook as deleteWebhookRow,
  findWebhook,
  insertWebhook,
  listDeliveries,
  listWebhooks,
  lockUserWebhooks,
  plaintextSecrets,
  replaceSecrets,
  sameWebhook,
  type WebhookRow,
} from "../db/queries/webhooks";
import { Conflict, InvalidInput, NotFound } from "../errors";
import { EVENT_TYPE_NAMES, isEventType } from "../event-types";
import { newId } from "../ids";
import { assertPublicUrl, SafeFetchError } from "../net/safe-fetch";
import { createSecretBox, SEALED_PATTERN } from "../secret-box";
import type { ServiceDeps, User } from "./deps";
import { keysetPage } from "./cursor";
import { newSigningSecret } from "./signing-secrets";

/** The queue that runs deliveries: one job per hand-off of an outbox row (see webhook-dispatch.ts). */
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
  await deps.db.transaction(async (tx) => {
    // Under the user's lock, so two creates at once cannot both pass the cap or both be the first of a pair.
    await lockUserWebhooks(tx, user.userId);
    const existing = await sameWebhook(tx, user.userId, row.url, row.events);
    if (existing)
      throw new Conflict("webhook_exists", `Webhook ${existing} already sends these event types to this URL; change or delete it instead of adding another.`, {
        webhookId: existing,
      });
    const max = deps.config.maxWebhooksPerUser;
    if ((await countWebhooks(tx, user.userId)) >= max)
      throw new Conflict("webhook_limit", `This user already has ${max} webhooks, the most FLOWD_MAX_WEBHOOKS_PER_USER allows; delete one first.`, { limit: max });
    await insertWebhook(tx, row);
  });
  return { ...webhookView(row), secret };
}

/**
 * The key is configuration, and config already reaches every service and worker: the box is a pure
 * function of it, so it is made where it is used rather than carried as one more dependency.
 */
export const secretBox = (config: Config) => createSecretBox(config.secretKey);

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
 * The delay before retry `attemptsMade` (1 after the first failure): the schedule's entry with ±10%
 * jitter, so endpoints that failed together are not all retried in the same instant.
 */
export const webhookBackoff =
  (scheduleMs: readonly number[], random: () => number = Math.random) =>
  (attemptsMade: number): number => {
    const base = scheduleMs[Math.min(attemptsMade, scheduleMs.length) - 1] ?? 0;
    return Math.round(base * (0.9 + 0.2 * random()));
  };
