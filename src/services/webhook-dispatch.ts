import type { Config } from "../config";
import type { Db } from "../db/client";
import { claimDispatch, moveDispatchCursor } from "../db/queries/webhooks";
import { insertOutboxRows, releaseDue, returnLost, type Handoff } from "../db/queries/webhook-outbox";
import type { Producer } from "../queues";
import { jobTelemetryFrom } from "../telemetry";
import { WEBHOOKS_QUEUE } from "./webhooks";

/** Events read per pass; a full batch means more are waiting. */
export const DISPATCH_BATCH = 500;
/** Rows handed to Redis per pass at most (the slots bound it far below this in practice). */
const RELEASE_BATCH = 1000;

export interface DispatchPass {
  /** Another dispatcher held the cursor: it is doing this step now. */
  busy: boolean;
  /** Events read from the log. */
  events: number;
  /** Outbox rows handed to Redis. */
  released: number;
}

type Deps = { db: Db; producer: Producer; config: Config };

/** The BullMQ job of one hand-off: its id names the row and the hand-off, so a stale job knows it is stale. */
export const handoffJobId = (h: Pick<Handoff, "seq" | "webhookId" | "handoff">) => `${h.seq}-${h.webhookId}-${h.handoff}`;

/**
 * One dispatch step. In one transaction holding the cursor's row lock: writes an outbox row per
 * event and matching endpoint for the next events, moves the cursor past them, and marks due rows
 * running within their user's and endpoint's slots (releaseDue). After the commit, those rows go to
 * Redis — after, so a job never runs before its row says it may. Should the add fail, the rows go
 * back to pending at once; should the process die in between, the reconciler finds them.
 */
export async function dispatchWebhooks(deps: Deps, batch = DISPATCH_BATCH): Promise<DispatchPass> {
  const step = await deps.db.transaction(async (tx) => {
    const claimed = await claimDispatch(tx, batch);
    if (!claimed) return null;
    if (claimed.to > claimed.from) {
      await insertOutboxRows(tx, claimed.from, claimed.to);
      await moveDispatchCursor(tx, claimed.to);
    }
    return { events: claimed.to - claimed.from, due: await releaseDue(tx, deps.config.webhookSlotsPerUser, RELEASE_BATCH) };
  });
  if (!step) return { busy: true, events: 0, released: 0 };
  if (step.due.length > 0)
    await addHandoffs(deps.producer, step.due).catch(async (err) => {
      await returnLost(deps.db, step.due);
      throw err;
    });
  return { busy: false, events: step.events, released: step.due.length };
}

/**
 * One BullMQ job per hand-off, one attempt each: the retry schedule lives in the outbox row (a
 * failed attempt puts it back to pending with its next due time), so Redis never holds the only
 * copy of a delivery's future.
 */
export async function addHandoffs(producer: Producer, due: Handoff[]) {
  await producer.at(producer.home).queue(WEBHOOKS_QUEUE).addBulk(
    due.map((d) => ({
      name: "deliver",
      data: { seq: d.seq, webhookId: d.webhookId, handoff: d.handoff },
      opts: {
        jobId: handoffJobId(d),
        attempts: 1,
        // Its row holds the outcome and the attempt log every detail: the job is only the running.
        removeOnComplete: true,
        removeOnFail: true,
        // The delivery runs in the trace of the request that created the flow, not one of its own.
        ...jobTelemetryFrom(d.traceparent),
      },
    })),
  );
}
