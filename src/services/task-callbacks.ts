import { createHash, randomBytes } from "node:crypto";
import { Job } from "bullmq";
import type { Db } from "../db/client";
import { beat, findCallback, storeOutcome, type CallbackTarget, type StoredCallback } from "../db/queries/http-tasks";
import { waitTermsOf } from "../db/queries/waits";
import { AppError, Conflict } from "../errors";
import type { Logger } from "../log";
import { addReleased } from "../scheduling/release";
import { checkPayload } from "./signal-payloads";
import type { Producer } from "../queues";
import { isFinished } from "../statuses";

/** A callback path's token: 32 random bytes, base64url (43 characters). Only its SHA-256 is stored. */
export const CALLBACK_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export const hashCallbackToken = (token: string) => createHash("sha256").update(token).digest("hex");

export function newCallbackToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashCallbackToken(token) };
}

export class CallbackNotFound extends AppError {
  constructor() {
    super(404, "not_found", "No callback exists at this address: use the exact flowd-callback-url the task's request carried.");
  }
}

export class CallbackUsed extends AppError {
  constructor(kind: string) {
    super(410, "callback_used", `This callback was used already (${kind}); a callback URL answers one complete or fail, and the first one stays.`);
  }
}

export type CallbackKind = "complete" | "fail" | "heartbeat";
export type CallbackInput = { kind: "complete"; result: unknown } | { kind: "fail"; message: string; permanent: boolean } | { kind: "heartbeat" };

export interface CallbackAnswer {
  jobId: string;
  accepted: CallbackKind;
  /** Heartbeats: when the next one (or the callback) is due. */
  heartbeatBy?: string;
}

/**
 * Applies a service's callback for a parked `http` task: stores the outcome durably if the
 * single-use URL still waits (one statement), then wakes the parked job so a worker applies the
 * outcome at once instead of at its deadline. A refusal reads the row again to say why.
 */
export async function applyCallback(deps: { db: Db; producer: Producer; log?: Logger }, token: string, input: CallbackInput): Promise<CallbackAnswer> {
  if (!CALLBACK_TOKEN.test(token)) throw new CallbackNotFound();
  const hash = hashCallbackToken(token);
  // A signal step's completion URL: its result must match the step's schema like a signal's payload.
  if (input.kind === "complete") {
    const terms = await waitTermsOf(deps.db, hash);
    if (terms) checkPayload(terms.terms, terms.jobId, input.result, "/result");
  }
  const done =
    input.kind === "heartbeat"
      ? await beat(deps.db, hash)
      : await storeOutcome(deps.db, hash, input.kind === "complete" ? { kind: "complete", result: input.result } : { kind: "fail", message: input.message, permanent: input.permanent });
  if (!done) {
    const target = await findCallback(deps.db, hash);
    if (!target) throw new CallbackNotFound();
    refuseEnded(target);
    throw new CallbackUsed("ended"); // it ended between the two reads
  }
  // Woken even when this URL's offer never parked: its call's answer may have been lost with a
  // worker, and the job parked since under a later call of the same attempt (same webhook-id, which
  // a service that dedups acknowledges and reports on the first URL). The re-run claims this outcome.
  if (input.kind !== "heartbeat") await wakeParked(deps.producer, done);
  if (deps.log) await addReleased({ db: deps.db, producer: deps.producer, log: deps.log }, done.released);
  return { jobId: done.jobId, accepted: input.kind, ...(done.heartbeatDeadline && input.kind === "heartbeat" ? { heartbeatBy: done.heartbeatDeadline.toISOString() } : {}) };
}

function refuseEnded(target: CallbackTarget) {
  if (target.outcome) throw new CallbackUsed(target.outcome.kind);
  if (target.jobStatus === null || isFinished(target.jobStatus))
    throw new Conflict(
      "job_finished",
      target.jobStatus === "cancelled" ? "The job was cancelled; the callback changes nothing." : "The job is no longer waiting for this callback (it finished, was retried or deleted); nothing changed.",
    );
  if (target.resolution === "timed_out")
    throw new Conflict("callback_expired", "The callback's deadline passed and the attempt failed; a retry, if any, calls the service again with a new callback URL.");
  if (target.resolution === "withdrawn")
    throw new AppError(410, "callback_used", "The request that offered this URL was answered without 202 (or failed), so it waits for nothing; nothing changed.");
  if (target.resolution) throw new CallbackUsed(target.resolution);
}

/**
 * Moves the parked job from BullMQ's delayed set to waiting. If it is not delayed (the worker has
 * not finished parking it), the worker finds the stored outcome itself right after parking.
 */
export async function wakeParked(producer: Producer, target: StoredCallback) {
  try {
    // Promoting needs only the id: no need to read the job's hash first.
    await new Job(producer.at(target.shard).queue(target.queueName), "http", {}, {}, target.jobId).promote();
  } catch {
    // Not delayed (yet, or any more): see above. The outcome is stored either way.
  }
}
