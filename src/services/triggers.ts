import {
  countTopicTriggers,
  deleteTrigger as deleteTriggerRow,
  insertTrigger,
  listPublished,
  listTriggers,
  type PublishedEventRow,
  type TriggerRow,
} from "../db/queries/triggers";
import { Conflict, NotFound } from "../errors";
import { newId } from "../ids";
import { keysetPage } from "./cursor";
import type { ServiceDeps, User } from "./deps";
import { checkName } from "./definitions";
import { runnableVersion } from "./definition-runs";

export interface TriggerInput {
  topic: string;
  definition: string;
  version?: number;
  filter?: Record<string, unknown>;
}

export interface TriggerView {
  id: string;
  topic: string;
  definition: string;
  version: number | null;
  filter: Record<string, unknown> | null;
  createdAt: string;
}

/** Triggers one user may have on one topic: a publish starts a run per match, so its fan-out stays bounded. */
export const MAX_TRIGGERS_PER_TOPIC = 100;

const triggerView = (r: TriggerRow): TriggerView => ({
  id: r.id,
  topic: r.topic,
  definition: r.definition,
  version: r.version,
  filter: r.filter ?? null,
  createdAt: r.createdAt.toISOString(),
});

/** A trigger names a live definition (and version, when pinned) at creation; a later delete makes publishes skip it. */
export async function createTrigger(deps: Pick<ServiceDeps, "db">, user: User, body: TriggerInput): Promise<TriggerView> {
  checkName(body.topic, "topic", "/topic");
  checkName(body.definition, "definition name", "/definition");
  await runnableVersion(deps.db, user, body.definition, body.version);
  if ((await countTopicTriggers(deps.db, user.userId, body.topic)) >= MAX_TRIGGERS_PER_TOPIC)
    throw new Conflict("too_many_triggers", `The topic '${body.topic}' already has ${MAX_TRIGGERS_PER_TOPIC} triggers, the most one user may have on a topic; delete one first.`);
  const row: TriggerRow = {
    id: newId(),
    userId: user.userId,
    topic: body.topic,
    definition: body.definition,
    version: body.version ?? null,
    filter: body.filter ?? null,
    createdAt: new Date(),
  };
  await insertTrigger(deps.db, row);
  return triggerView(row);
}

export function listUserTriggers(deps: Pick<ServiceDeps, "db">, user: User, q: { limit?: number; cursor?: string; topic?: string }) {
  return keysetPage(q, (limit, before) => listTriggers(deps.db, user.userId, { limit, before, topic: q.topic }), triggerView);
}

export async function deleteTrigger(deps: Pick<ServiceDeps, "db">, user: User, id: string): Promise<void> {
  if (!(await deleteTriggerRow(deps.db, user.userId, id))) throw new NotFound("trigger", id);
}

export interface PublishedView {
  id: string;
  eventKey: string;
  topic: string;
  payload: unknown;
  matched: { triggerId: string; definition: string; version: number | null }[];
  createdAt: string;
}

export const publishedView = (r: PublishedEventRow): PublishedView => ({
  id: r.id,
  eventKey: r.eventKey,
  topic: r.topic,
  payload: r.payload ?? null,
  matched: r.matched,
  createdAt: r.createdAt.toISOString(),
});

export function listUserPublished(deps: Pick<ServiceDeps, "db">, user: User, q: { limit?: number; cursor?: string; topic?: string }) {
  return keysetPage(q, (limit, before) => listPublished(deps.db, user.userId, { limit, before, topic: q.topic }), publishedView);
}
