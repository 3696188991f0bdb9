/**
 * Works the bulk operations (operations.ts) in the background, in every API process: each takes a
 * running operation nobody holds (a lease in its row, `for update skip locked`), acts on its next
 * batch of snapshotted ids through the single-item use-cases, records the batch's outcomes and
 * counts together with a renewed lease, and goes on until none is left or the operation is
 * cancelled. A process that dies mid-operation leaves its lease to run out; another takes over
 * from the first id without an outcome (an id acted on but not yet recorded is tried again and
 * then answers 409, counted as skipped — the row itself is never changed twice).
 */
import { claimOperation, finishOperation, pendingItems, recordBatch, releaseOperations, type ItemOutcome, type OperationRow } from "../db/queries/operations";
import type { OperationReason } from "../db/schema";
import { AppError } from "../errors";
import { newId } from "../ids";
import type { ServiceDeps, User } from "./deps";
import { cancelFlow, deleteFlow, retryFlow } from "./flows";
import { cancelJob, deleteJob, retryJob } from "./jobs";

type Act = (deps: ServiceDeps, user: User, id: string) => Promise<unknown>;
const ACTIONS: Record<string, Act> = {
  "flows.cancel": cancelFlow,
  "flows.retry": retryFlow,
  "flows.delete": deleteFlow,
  "jobs.cancel": cancelJob,
  "jobs.retry": retryJob,
  "jobs.delete": deleteJob,
};

export type RunnerOptions = { batchSize: number; concurrency: number; leaseMs: number; pollMs: number };
const DEFAULTS: RunnerOptions = { batchSize: 100, concurrency: 8, leaseMs: 30_000, pollMs: 1000 };
/** Ids kept per reason: enough to look at, bounded whatever the operation's size. */
const REASON_IDS = 5;

export function startOperationRunner(deps: ServiceDeps, options: Partial<RunnerOptions> = {}) {
  const opts = { ...DEFAULTS, ...options };
  const owner = newId();
  const log = deps.log.child({ component: "operations" });
  let stopped = false;
  let wake: (() => void) | undefined;
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function loop() {
    while (!stopped) {
      let op: OperationRow | undefined;
      try {
        op = await claimOperation(deps.db, owner, opts.leaseMs);
        if (op) await work(op);
      } catch (err) {
        log.warn("bulk operation runner: will try again", { operationId: op?.id, err: String(err) });
        op = undefined;
      }
      if (!op && !stopped) await nap(opts.pollMs);
    }
  }

  async function work(op: OperationRow) {
    const act = ACTIONS[op.kind];
    if (!act) return finishOperation(deps.db, op.id, owner, "failed", `unknown operation kind '${op.kind}'`);
    const user = { userId: op.userId };
    const reasons = [...op.reasons];
    while (!stopped) {
      const ids = await pendingItems(deps.db, op.id, opts.batchSize);
      if (ids.length === 0) return finishOperation(deps.db, op.id, owner, "completed");
      const outcomes = await mapLimit(ids, opts.concurrency, async (id) => {
        try {
          await act(deps, user, id);
          return { id, outcome: "done" as ItemOutcome };
        } catch (err) {
          const skipped = err instanceof AppError && (err.status === 409 || err.status === 404);
          const code = err instanceof AppError ? err.code : "internal_error";
          addReason(reasons, code, describe(err), id);
          if (!skipped) log.warn("bulk operation: an item failed", { operationId: op.id, id, err: String(err) });
          return { id, outcome: (skipped ? "skipped" : "failed") as ItemOutcome };
        }
      });
      const status = await recordBatch(deps.db, { operationId: op.id, owner, leaseMs: opts.leaseMs, outcomes, reasons });
      // Cancelled by its user, or (after a stall past the lease) taken over by another process.
      if (status !== "running") return;
    }
  }

  const running = loop();
  return {
    /** A new operation is waiting: look now rather than at the next poll. */
    kick() {
      wake?.();
    },
    async stop() {
      stopped = true;
      wake?.();
      await running;
      await releaseOperations(deps.db, owner).catch((err) => log.warn("could not release bulk operations", { err: String(err) }));
    },
  };
}
export type OperationRunner = ReturnType<typeof startOperationRunner>;

/** A refusal's own sentence; for anything else the database's (or runtime's) message, not the SQL text around it. */
function describe(err: unknown): string {
  if (err instanceof AppError) return err.message;
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const inner = e?.cause?.message ? e.cause : e;
  const text = `${inner.code ? `${inner.code}: ` : ""}${inner.message ?? String(err)}`;
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function addReason(reasons: OperationReason[], code: string, message: string, id: string) {
  let reason = reasons.find((r) => r.code === code);
  if (!reason) reasons.push((reason = { code, message, count: 0, ids: [] }));
  reason.count++;
  if (reason.ids.length < REASON_IDS) reason.ids.push(id);
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}
