import { bigint, integer, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";
import { users } from "./users";

/**
 * A user's per-key limits (src/scheduling/limits.ts), stored once per key: a job's `opts` name the
 * key and set its limits when the key has none yet; `PUT /v1/limits/:key` changes them at run time.
 * How many jobs a key has running is never stored: it is counted from the job rows, so a job lost
 * with its worker (kill -9) cannot leak a slot.
 */
export const limitKeys = pgTable(
  "limit_keys",
  {
    userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    key: text("key").notNull(),
    /** At most this many of the key's jobs run (are released and unfinished) at once; null: no limit. */
    concurrency: integer("concurrency"),
    /** At most `rate_max` starts per `rate_per_ms`, spread evenly; null: no rate limit. */
    rateMax: integer("rate_max"),
    ratePerMs: bigint("rate_per_ms", { mode: "number" }),
    /** The rate limit's next start time (GCRA's theoretical arrival time), epoch ms. */
    rateNextMs: bigint("rate_next_ms", { mode: "number" }),
    /** When a job whose turn key this is was last released (a user's sequence): the key served longest ago goes first. */
    turn: bigint("turn", { mode: "number" }).notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.key] })],
);

