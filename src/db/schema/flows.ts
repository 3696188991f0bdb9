import { sql } from "drizzle-orm";
import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { users } from "./users";
import { isPending, isQueued, jobColumns, limitColumns, limitIndexes, mayExpire } from "./columns";
import { hasRunOutcome } from "./jobs";

export const flows = pgTable(
  "flows",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** running | completed | failed | cancelled — kept equal to the root job's outcome by a trigger. */
    status: text("status").notNull().default("running"),
    rootId: text("root_id"),
    jobCount: integer("job_count").notNull(),
    /** A graph (`jobs` with `dependsOn`) rather than a tree: it finishes when every job has, not with a root. */
    graph: boolean("graph").notNull().default(false),
    /** Bumped on every retry; a retried job gets a new BullMQ id derived from it. */
    generation: integer("generation").notNull().default(0),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
    /** The creating request's W3C traceparent (tracing on only): its webhook deliveries join that trace. */
    traceparent: text("traceparent"),
    /** A run of a definition (src/services/definition-runs.ts): its name and version, kept as text so a deleted definition still shows. */
    definition: text("definition"),
    definitionVersion: integer("definition_version"),
    /** The schedule whose firing started it, or the published event (its row id) whose trigger did. */
    scheduleId: text("schedule_id"),
    eventId: text("event_id"),
  },
  (t) => [
    // Newest-first keyset pages, with and without a status filter.
    index("flows_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    index("flows_user_status_created_idx").on(t.userId, t.status, t.createdAt.desc(), t.id.desc()),
    uniqueIndex("flows_user_idempotency_idx").on(t.userId, t.idempotencyKey).where(sql`${t.idempotencyKey} is not null`),
    // `GET /v1/flows?name=` (a prefix): text_pattern_ops lets `like 'x%'` use a btree whatever the collation.
    index("flows_user_name_idx").on(t.userId, t.name.op("text_pattern_ops")),
    // `GET /v1/flows?definition=`, newest first.
    index("flows_user_definition_idx").on(t.userId, t.definition, t.createdAt.desc(), t.id.desc()).where(sql`${t.definition} is not null`),
    // `?scheduleId=` and `?eventId=`: the few flows of one schedule or event, found without walking the user's flows.
    index("flows_schedule_idx").on(t.scheduleId, t.createdAt.desc(), t.id.desc()).where(sql`${t.scheduleId} is not null`),
    index("flows_event_idx").on(t.eventId, t.createdAt.desc(), t.id.desc()).where(sql`${t.eventId} is not null`),
  ],
);

export const flowJobs = pgTable(
  "flow_jobs",
  {
    ...jobColumns(),
    /**
     * No foreign keys here: a flow's jobs are written in the same statement as the flow, and checking
     * a key per row took a quarter of a 1,000-job insert. A trigger deletes a flow's jobs with it.
     */
    flowId: text("flow_id").notNull(),
    parentId: text("parent_id"),
    /** Row ids of the direct children, in the order given (BullMQ ids change on retry; these do not). */
    children: jsonb("children").$type<string[]>(),
    depth: integer("depth").notNull().default(0),
    /** A graph job's key (unique in its flow), by which its dependents receive its result. */
    key: text("key"),
    /** A graph job's dependencies: row ids of the jobs it waits for. */
    dependsOn: jsonb("depends_on").$type<string[]>(),
    /**
     * A job added while its flow ran (src/services/spawn.ts): the row id of the running job that
     * added it. A handler that runs again (after a join) and adds the same keys gets these rows back.
     */
    spawnedBy: text("spawned_by"),
    /**
     * A running job parked on a join (`waiting_for` = `children`): the row ids of the jobs it waits
     * for; the recorder's batch that finishes the last of them wakes it.
     */
    waitsOn: jsonb("waits_on").$type<string[]>(),
    // Per-key limits (src/scheduling/limits.ts).
    ...limitColumns(),
  },
  (t) => [
    ...limitIndexes("flow_jobs", t),
    index("flow_jobs_flow_idx").on(t.flowId),
    // The enqueuer's scan for rows accepted but not yet in Redis.
    index("flow_jobs_pending_idx").on(t.createdAt).where(isPending(t.status)),
    // The reconciler's walk over flows with jobs believed in Redis: without it, every pass read
    // every row ever written (260 ms at a million rows; 1.6 ms with it).
    index("flow_jobs_queued_idx").on(t.flowId).where(isQueued(t.status)),
    // The recorder's look-up of a flow's held jobs when one of their dependencies finishes.
    index("flow_jobs_held_idx").on(t.flowId).where(sql`${t.waitingFor} is not null`),
    // The recorder's look-up of a flow's jobs parked on a join (few) when a job of the flow ends,
    // without walking its held jobs (many, in a large graph).
    index("flow_jobs_joins_idx").on(t.flowId).where(sql`${t.waitingFor} = 'children'`),
    // /metrics counts parked wait steps by reason without reading the table.
    index("flow_jobs_parked_idx").on(t.waitingFor).where(sql`${t.waitingFor} is not null and ${t.status} = 'active'`),
    // `GET /v1/flows?data=` matches the root's data only, so only roots are indexed (1 row per
    // flow, not up to 1,000): the query repeats the predicate's text so the planner can use it.
    index("flow_jobs_root_data_idx").using("gin", t.data.op("jsonb_path_ops")).where(sql`${t.parentId} is null`),
    // `GET /v1/stats`: a user's counts by status (index-only), and finished jobs by minute.
    index("flow_jobs_user_status_idx").on(t.userId, t.status),
    // The expiry sweep: ready jobs with an expireAfterMs that have not started, oldest ready first.
    index("flow_jobs_expiry_idx").on(t.readyAt).where(mayExpire(t)),
    index("flow_jobs_user_finished_idx").on(t.userId, t.updatedAt).where(hasRunOutcome(t.status)),
  ],
);
