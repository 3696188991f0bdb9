-- The reconciler looks every 10 s for jobs Postgres believes are in Redis. Without an index on those
-- statuses each pass read every row ever written: 260 ms at a million flow jobs, 1.6 ms with this.
-- Built in the migration's transaction (as drizzle-kit runs them), not CONCURRENTLY: writes to the
-- two tables wait while each index is built, about 0.1 s per million rows.
CREATE INDEX "flow_jobs_queued_idx" ON "flow_jobs" USING btree ("flow_id") WHERE "flow_jobs"."status" in ('waiting', 'waiting-children', 'delayed', 'active');--> statement-breakpoint
CREATE INDEX "jobs_queued_idx" ON "jobs" USING btree ("updated_at") WHERE "jobs"."status" in ('waiting', 'waiting-children', 'delayed', 'active');