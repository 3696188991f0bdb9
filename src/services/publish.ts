import { findEventByKey, insertEventOnce, matchingTriggers, prunePublished } from "../db/queries/triggers";
import type { DbOrTx } from "../db/client";
import { AppError } from "../errors";
import { newId } from "../ids";
import type { ServiceDeps, User } from "./deps";
import { checkName } from "./definitions";
import { createPreparedRun, prepareRun, runDefinition, runRequest } from "./definition-runs";

export interface PublishInput {
  topic: string;
  payload?: unknown;
  id?: string;
}

export type StartedRun = { triggerId: string; definition: string; version: number; flowId: string };
export type SkippedTrigger = { triggerId: string; definition: string; code: string; message: string };

export interface PublishAnswer {
  /** The stored event's id: flows it started carry it as `eventId`. */
  eventId: string;
  /** The publisher's `id` (or eventId when none was sent). */
  id: string;
  /** True when this `id` was published before: nothing new was started. */
  duplicate: boolean;
  started: StartedRun[];
  /** Runs the first publish of this `id` had already started (a duplicate's answer). */
  alreadyStarted: StartedRun[];
  skipped: SkippedTrigger[];
}

/** How long a published event (and so the deduplication of its `id`) is kept. */
export const PUBLISHED_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Starts one run per trigger on the topic whose filter the payload contains, with the payload as
 * input. The event row is written first under a unique (user, id): the first publish of an id
 * records which triggers matched, and every publish of it runs exactly those under keys derived from
 * the event and the trigger — so a repeat, or two publishes at once, start each run once (the
 * flows' idempotency index decides), and a repeat after a crash half-way starts what was missing.
 * A trigger whose definition is gone, or whose version's schema refuses the payload, is skipped.
 */
export async function publish(deps: ServiceDeps, user: User, body: PublishInput): Promise<PublishAnswer> {
  checkName(body.topic, "topic", "/topic");
  const payload = body.payload === undefined ? {} : body.payload;
  const rowId = newId();
  const key = body.id ?? rowId;
  const matched = (await matchingTriggers(deps.db, user.userId, body.topic, payload)).map((t) => ({ triggerId: t.id, definition: t.definition, version: t.version }));
  const inserted = await insertEventOnce(deps.db, { id: rowId, userId: user.userId, eventKey: key, topic: body.topic, payload, matched });
  const event = inserted ?? (await findEventByKey(deps.db, user.userId, key));
  if (!event) throw new Error("a published event conflicted on its id but cannot be read");
  const answer: PublishAnswer = { eventId: event.id, id: key, duplicate: !inserted, started: [], alreadyStarted: [], skipped: [] };
  const input = event.payload ?? {};
  // Triggers of one definition and version share their preparation: one read, one check of the input.
  const preparations = new Map<string, ReturnType<typeof prepareRun>>();
  const prepare = (definition: string, version: number | null) => {
    const k = `${definition}@${version}`;
    let p = preparations.get(k);
    if (!p) preparations.set(k, (p = prepareRun(deps.db, user, definition, { input, ...(version !== null ? { version } : {}) })));
    return p;
  };
  const outcomes = await Promise.all(
    event.matched.map(async (t) => {
      const body = { input, ...(t.version !== null ? { version: t.version } : {}) };
      const runKey = `flowd:event:${event.id}:${t.triggerId}`;
      try {
        const { flow, replayed } = inserted
          ? await createPreparedRun(deps, user, t.definition, await prepare(t.definition, t.version), runKey, {
              link: { eventId: event.id },
              request: runRequest(t.definition, body),
              fresh: true,
            })
          : await runDefinition(deps, user, t.definition, body, runKey, { eventId: event.id });
        return { run: { triggerId: t.triggerId, definition: t.definition, version: flow.definition?.version ?? 0, flowId: flow.id }, replayed };
      } catch (err) {
        if (!(err instanceof AppError) || err.status >= 500) throw err;
        return { skip: { triggerId: t.triggerId, definition: t.definition, code: err.code, message: err.message } };
      }
    }),
  );
  for (const o of outcomes) {
    if ("skip" in o) answer.skipped.push(o.skip!);
    else (o.replayed ? answer.alreadyStarted : answer.started).push(o.run);
  }
  return answer;
}

/** Forgets events past the retention (their ids may be published anew); run by the workers' schedule keeper. */
export const pruneOldEvents = (db: DbOrTx, now = Date.now()) => prunePublished(db, new Date(now - PUBLISHED_RETENTION_MS));
