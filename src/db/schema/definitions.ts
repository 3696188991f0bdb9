import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { users } from "./users";

/**
 * A named flow definition of one user, or of every user when a handler module registered it
 * (`user_id` null; a user's own definition of the same name comes first for that user). Deleting
 * it only sets `deleted_at`: a later PUT of the same name goes on from its last version, so a
 * (name, version) on a flow row never means two bodies.
 */
export const definitions = pgTable(
  "definitions",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    latestVersion: integer("latest_version").notNull().default(0),
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("definitions_user_name_idx").on(t.userId, t.name),
    // A unique (user_id, name) lets any number of nulls through: one module definition per name.
    uniqueIndex("definitions_module_name_idx").on(t.name).where(sql`${t.userId} is null`),
    index("definitions_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
  ],
);

/** One immutable version of a definition: never updated, so a run of it never changes under it. */
export const definitionVersions = pgTable(
  "definition_versions",
  {
    definitionId: text("definition_id").notNull().references(() => definitions.id, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    description: text("description"),
    inputSchema: jsonb("input_schema"),
    /** The flow as PUT: `{ name?, root }` or `{ name?, jobs }`, with its `$input` references. */
    flow: jsonb("flow").notNull().$type<Record<string, unknown>>(),
    /** sha256 of the canonical JSON of { description, input, flow }: an identical PUT makes no new version. */
    hash: text("hash").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.definitionId, t.version] })],
);

/** Starts a run of `definition` for every published event on `topic` whose payload contains `filter`. */
export const triggers = pgTable(
  "triggers",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    topic: text("topic").notNull(),
    /** By name: a definition deleted later makes publishes skip this trigger, one PUT again revives it. */
    definition: text("definition").notNull(),
    /** Null: the latest version at each publish. */
    version: integer("version"),
    filter: jsonb("filter").$type<Record<string, unknown>>(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("triggers_user_topic_idx").on(t.userId, t.topic),
    index("triggers_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
  ],
);

/**
 * Every `POST /v1/publish`: who, when, what, and which runs it started. The unique (user, key) is
 * the deduplication: a second publish with the same `id` finds this row and starts nothing new.
 * Rows older than the retention are pruned by the workers' schedule keeper.
 */
export const publishedEvents = pgTable(
  "published_events",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    /** The publisher's `id`, or this row's id when none was sent. */
    eventKey: text("event_key").notNull(),
    topic: text("topic").notNull(),
    payload: jsonb("payload"),
    /** The triggers matched when it was first published, with the version each resolved to. */
    matched: jsonb("matched").notNull().$type<{ triggerId: string; definition: string; version: number | null }[]>(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("published_events_user_key_idx").on(t.userId, t.eventKey),
    index("published_events_created_idx").on(t.createdAt),
    index("published_events_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
  ],
);
