/**
 * Bulk actions by filter (`POST /v1/{flows,jobs}/bulk/{cancel,retry,delete}`): a dry run counts,
 * otherwise the matched ids are snapshotted into a tracked operation that the runner
 * (operation-runner.ts) works through in the background, one item at a time through the same
 * use-case as the single-item route, so each flow or job changes exactly as if acted on alone.
 */
import { sql, type SQL } from "drizzle-orm";
import { flowConditions } from "../db/queries/flows";
import { jobConditions } from "../db/queries/jobs";
import {
  cancelOperationRow,
  countMatches,
  findOperation,
  insertOperation,
  listOperations,
  sampleMatches,
  type BulkTarget,
  type OperationRow,
} from "../db/queries/operations";
import type { OperationReason } from "../db/schema";
import { Conflict, InvalidInput, NotFound } from "../errors";
import { newId } from "../ids";
import { keysetPage } from "./cursor";
import type { ServiceDeps, User } from "./deps";
import { timeRange } from "./search";
import { findUnstorable, UNSTORABLE } from "../unstorable";

export const BULK_ACTIONS = ["cancel", "retry", "delete"] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];
export type OperationKind = `${BulkTarget}.${BulkAction}`;

/** The first ids a dry run shows. */
export const DRY_RUN_SAMPLE = 20;

export type BulkFilter = {
  status?: string;
  name?: string;
  data?: Record<string, unknown>;
  definition?: string;
  scheduleId?: string;
  eventId?: string;
  since?: string;
  until?: string;
  ids?: string[];
};
export type BulkBody = BulkFilter & { dryRun?: boolean };

export interface OperationView {
  id: string;
  kind: string;
  filter: Record<string, unknown>;
  status: string;
  matched: number;
  done: number;
  skipped: number;
  failed: number;
  reasons: OperationReason[];
  error: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export const operationView = (r: OperationRow): OperationView => ({
  id: r.id,
  kind: r.kind,
  filter: r.filter,
  status: r.status,
  matched: r.matched,
  done: r.done,
  skipped: r.skipped,
  failed: r.failed,
  reasons: r.reasons,
  error: r.error,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
  finishedAt: r.finishedAt?.toISOString() ?? null,
});

/** Only what the caller gave, so the stored filter reads back as sent. */
function filterOf(body: BulkBody): BulkFilter {
  const { dryRun: _, ...filter } = body;
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined && v !== "")) as BulkFilter;
}

function conditionsFor(target: BulkTarget, user: User, filter: BulkFilter): SQL[] {
  if (Object.keys(filter).length === 0)
    throw new InvalidInput(
      "Give a filter (status, name, data, since, until…) or ids: a bulk action never applies to everything by default.",
      [{ path: "/", message: "no filter and no ids" }],
      "empty_filter",
    );
  if (filter.data) {
    const bad = findUnstorable(filter.data);
    if (bad) throw new InvalidInput(`'data' at /data${bad.path} ${UNSTORABLE[bad.problem]}.`, [{ path: `/data${bad.path}`, message: UNSTORABLE[bad.problem] }]);
  }
  const { since: _s, until: _u, ...rest } = filter;
  const match = { ...rest, ...timeRange(filter) };
  return target === "flows" ? flowConditions(user.userId, match) : jobConditions(user.userId, match);
}

const tooMany = (target: BulkTarget, max: number) =>
  new InvalidInput(
    `The filter matches more than ${max.toLocaleString("en")} ${target} (FLOWD_BULK_MAX); narrow it (status, name, since/until…) and act in several steps.`,
    { max },
    "bulk_too_large",
  );

/** A dry run: how many the filter matches now, and the newest few. */
export async function dryRunBulk(deps: Pick<ServiceDeps, "db" | "config">, user: User, target: BulkTarget, body: BulkBody) {
  const conditions = conditionsFor(target, user, filterOf(body));
  const max = deps.config.bulkMax;
  const matched = await countMatches(deps.db, target, conditions, max + 1);
  if (matched > max) throw tooMany(target, max);
  return { matched, sample: await sampleMatches(deps.db, target, conditions, DRY_RUN_SAMPLE) };
}

/** Snapshots what the filter matches into a new running operation (completed at once if nothing matched). */
export async function startBulk(deps: Pick<ServiceDeps, "db" | "config">, user: User, target: BulkTarget, action: BulkAction, body: BulkBody) {
  const filter = filterOf(body);
  const conditions = conditionsFor(target, user, filter);
  const max = deps.config.bulkMax;
  const row = await deps.db.transaction(async (tx) => {
    const now = new Date();
    const op = await insertOperation(
      tx,
      { id: newId(), userId: user.userId, kind: `${target}.${action}`, filter, status: "running", matched: 0, createdAt: now, updatedAt: now },
      target,
      conditions,
      max + 1,
    );
    // Thrown inside the transaction: the operation and its snapshot are rolled back, nothing written.
    if (op.matched > max) throw tooMany(target, max);
    if (op.matched === 0) {
      op.status = "completed";
      op.finishedAt = now;
      await tx.execute(sql`update operations set status = 'completed', finished_at = now() where id = ${op.id}`);
    }
    return op;
  });
  return operationView(row);
}

export async function getOperation(deps: Pick<ServiceDeps, "db">, user: User, id: string): Promise<OperationView> {
  const row = await findOperation(deps.db, user.userId, id);
  if (!row) throw new NotFound("operation", id);
  return operationView(row);
}

export function listUserOperations(deps: Pick<ServiceDeps, "db">, user: User, q: { limit?: number; cursor?: string }) {
  return keysetPage(q, (limit, before) => listOperations(deps.db, user.userId, { limit, before }), operationView);
}

/** Stops a running operation before its next batch; what was done stays done. 409 once it has finished. */
export async function cancelOperation(deps: Pick<ServiceDeps, "db">, user: User, id: string): Promise<OperationView> {
  const row = await cancelOperationRow(deps.db, user.userId, id);
  if (row) return operationView(row);
  const existing = await findOperation(deps.db, user.userId, id);
  if (!existing) throw new NotFound("operation", id);
  throw new Conflict("operation_finished", `The operation already finished as '${existing.status}'; only a running operation can be cancelled.`);
}
