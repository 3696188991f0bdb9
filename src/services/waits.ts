import { storeOutcome, type StoredCallback } from "../db/queries/http-tasks";
import { findSignalWaits, findWaitTarget, openApprovals, rotateWaitToken, type WaitTarget } from "../db/queries/waits";
import type { ApprovalDecision, CallbackOutcome } from "../db/schema";
import { Conflict, Forbidden, NotFound } from "../errors";
import { addReleased } from "../scheduling/release";
import { shownUntil } from "../scheduling/waiting-for";
import { isFinished } from "../statuses";
import type { ServiceDeps } from "./deps";
import { checkPayload } from "./signal-payloads";
import { newCallbackToken, wakeParked } from "./task-callbacks";
import type { AuthUser } from "./tokens";

/**
 * Ending wait steps from outside: a signal (by the job's id, or to every step of the user waiting
 * on a key), an approval's decision, and a signal step's single-use completion URL. Each stores the
 * outcome on the step's wait (the same statement an `http` task's callback uses: the job row is
 * written `completed` at once) and promotes the parked job, whose re-run applies it.
 */

type Deps = Pick<ServiceDeps, "db" | "producer" | "config" | "log">;

export interface WaitAnswer {
  id: string;
  jobId: string;
  accepted: "signal" | "approve" | "reject";
}

/** `POST /v1/signals` wakes at most this many steps per call. */
export const MAX_SIGNALLED = 1_000;

export async function signalJob(deps: Deps, user: AuthUser, id: string, payload: unknown): Promise<WaitAnswer> {
  const target = await findWaitTarget(deps.db, id);
  if (!target || target.userId !== user.userId) throw new NotFound("job", id);
  const wait = openWait(target, "signal");
  checkPayload(target.wait?.terms, target.id, payload, "/payload");
  await store(deps, target, wait.tokenHash, { kind: "complete", result: payload }, null);
  return { id: target.id, jobId: target.jobId, accepted: "signal" };
}

/** Every step of the user waiting for a signal on `key` gets the payload; none waiting is not an error. */
export async function signalKey(deps: Deps, user: AuthUser, key: string, payload: unknown): Promise<{ key: string; jobs: string[] }> {
  const waits = await findSignalWaits(deps.db, user.userId, key, MAX_SIGNALLED);
  // All or none: a payload one step's schema refuses is refused before any step is woken.
  for (const w of waits) checkPayload(w.wait?.terms, w.id, payload, "/payload");
  const jobs: string[] = [];
  for (const w of waits) {
    const stored = await storeOutcome(deps.db, w.wait!.tokenHash, { kind: "complete", result: payload });
    if (!stored) continue; // ended meanwhile (timed out, cancelled, signalled by id)
    await addReleased(deps, stored.released);
    await wakeParked(deps.producer, stored);
    jobs.push(w.id);
  }
  return { key, jobs };
}

/**
 * An approval step's decision. Its approvers (user names) may decide, and see it for that even when
 * the flow is another user's; with none named, only its owner. Anyone else gets 404 as for any
 * other user's job; the owner, when not named, 403.
 */
export async function decide(deps: Deps, user: AuthUser, id: string, approved: boolean, comment: string | undefined): Promise<WaitAnswer> {
  const target = await findWaitTarget(deps.db, id);
  const approvers = target?.wait?.kind === "approval" ? target.wait.terms?.approvers : undefined;
  if (!target || (target.userId !== user.userId && !approvers?.includes(user.userName))) throw new NotFound("job", id);
  const wait = openWait(target, "approval");
  if (approvers && !approvers.includes(user.userName))
    throw new Forbidden("not_an_approver", `Only ${approvers.map((a) => `'${a}'`).join(", ")} may decide this approval; '${user.userName}' is not named in its approvers.`);
  const decision: ApprovalDecision = { approved, by: user.userName, at: new Date().toISOString(), ...(comment !== undefined ? { comment } : {}) };
  const outcome: CallbackOutcome = approved
    ? { kind: "complete", result: decision }
    : { kind: "fail", message: `[rejected] rejected by ${user.userName}${comment ? `: ${comment}` : ""}`, permanent: true };
  await store(deps, target, wait.tokenHash, outcome, decision);
  return { id: target.id, jobId: target.jobId, accepted: approved ? "approve" : "reject" };
}

/**
 * A single-use URL that completes the signal step without an API token (`POST <url>` with `{ result }`),
 * for a third party. Each call issues a new one: the previous URL stops working.
 */
export async function completionUrl(deps: Deps, user: AuthUser, id: string, baseUrl: string): Promise<{ id: string; jobId: string; url: string }> {
  const target = await findWaitTarget(deps.db, id);
  if (!target || target.userId !== user.userId) throw new NotFound("job", id);
  const wait = openWait(target, "signal");
  const { token, hash } = newCallbackToken();
  if (!(await rotateWaitToken(deps.db, wait.tokenHash, hash))) throw notWaiting(target, "signal");
  return { id: target.id, jobId: target.jobId, url: `${baseUrl}/callbacks/${token}/complete` };
}

function openWait(target: WaitTarget, kind: "signal" | "approval") {
  const wait = target.wait;
  if (wait?.kind === kind && wait.decided && !isFinished(target.status))
    throw new Conflict("already_decided", kind === "approval" ? "The approval was decided already; the first decision stays." : "The step was signalled already; the first payload stays.");
  if (!wait || wait.kind !== kind || !wait.open || target.status !== "active") throw notWaiting(target, kind);
  if (wait.decided)
    throw new Conflict("already_decided", kind === "approval" ? "The approval was decided already; the first decision stays." : "The step was signalled already; the first payload stays.");
  return wait;
}

function notWaiting(target: WaitTarget, kind: string) {
  const now = target.status === "active" && target.waitingFor ? `'active', waiting for ${target.waitingFor}` : `'${target.status}'`;
  return new Conflict("not_waiting", `The job is ${now}, not waiting for ${kind === "approval" ? "an approval" : "a signal"}; nothing changed.`);
}

async function store(deps: Deps, target: WaitTarget, tokenHash: string, outcome: CallbackOutcome, decision: ApprovalDecision | null): Promise<StoredCallback> {
  const stored = await storeOutcome(deps.db, tokenHash, outcome, decision);
  if (!stored) {
    // Ended between the read and the write: say how it stands now.
    const now = await findWaitTarget(deps.db, target.id);
    if (now?.wait?.decided) throw new Conflict("already_decided", "The step was signalled or decided already; the first one stays.");
    throw notWaiting(now ?? target, target.wait?.kind ?? "signal");
  }
  // Its dependents, released in the same statement, start now rather than after the recorder sees
  // BullMQ's completion; they go first, the step's own wake-up only tidies up after it.
  await addReleased(deps, stored.released);
  await wakeParked(deps.producer, stored);
  return stored;
}

export interface ApprovalView {
  id: string;
  jobId: string;
  flowId?: string;
  key?: string;
  owner: string;
  prompt: string;
  approvers?: string[];
  since: string;
  until?: string;
}

/** What waits for this user's decision ("Approvals"): steps naming them, and their own naming nobody. */
export async function listApprovals(deps: Pick<ServiceDeps, "db">, user: AuthUser, limit = 100): Promise<{ items: ApprovalView[] }> {
  const rows = await openApprovals(deps.db, user.userId, user.userName, limit);
  return {
    items: rows.map((r) => {
      const until = shownUntil(r.deadline);
      return {
        id: r.id,
        jobId: r.jobId,
        ...(r.flowId ? { flowId: r.flowId } : {}),
        ...(r.key ? { key: r.key } : {}),
        owner: r.owner,
        prompt: r.terms.prompt ?? "",
        ...(r.terms.approvers ? { approvers: r.terms.approvers } : {}),
        since: r.since.toISOString(),
        ...(until ? { until } : {}),
      };
    }),
  };
}
