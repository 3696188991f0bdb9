import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import { users } from "./users";

/** One skip or failure reason of a bulk operation: how often, and the first few ids it hit. */
export type OperationReason = { code: string; message: string; count: number; ids: string[] };

/**
 * A bulk action (`POST /v1/{flows,jobs}/bulk/{cancel,retry,delete}`) running in the background.
 * The matched ids are snapshotted into `operation_items` when it is created, so the counts add up
 * whatever happens to the rows meanwhile. Whichever API process holds the lease (`lease_owner`
 * until `lease_until`) works it; an expired lease (its process died) is taken over by another.
 */
export const operations = pgTable(
  "operations",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    /** `flows.cancel`, `flows.retry`, `flows.delete`, `jobs.cancel`, `jobs.retry`, `jobs.delete`. */
    kind: text("kind").notNull(),
    filter: jsonb("filter").notNull().$type<Record<string, unknown>>(),
    /** `running`, `completed`, `cancelled`, `failed`. */
    status: text("status").notNull(),
    matched: integer("matched").notNull(),
    done: integer("done").notNull().default(0),
    skipped: integer("skipped").notNull().default(0),
    failed: integer("failed").notNull().default(0),
    reasons: jsonb("reasons").notNull().$type<OperationReason[]>().default([]),
    error: text("error"),
    leaseOwner: text("lease_owner"),
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    index("operations_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    index("operations_running_idx").on(t.leaseUntil).where(sql`status = 'running'`),
  ],
);

/** The ids an operation matched, in the order it works them; `outcome` is set once each is acted on. */
export const operationItems = pgTable(
  "operation_items",
  {
    operationId: text("operation_id").notNull().references(() => operations.id, { onDelete: "cascade" }),
    itemId: text("item_id").notNull(),
    /** null until acted on; then `done`, `skipped` or `failed`. */
    outcome: text("outcome"),
  },
  (t) => [primaryKey({ columns: [t.operationId, t.itemId] })],
);
