-- A tree flow's job held for its per-key limits while BullMQ still waits for its children
-- (status waiting-children with a hold) holds no slot: the running-jobs index's predicate says so.
DROP INDEX "flow_jobs_limit_running_idx";--> statement-breakpoint
DROP INDEX "jobs_limit_running_idx";--> statement-breakpoint
CREATE INDEX "flow_jobs_limit_running_idx" ON "flow_jobs" USING btree ("user_id") WHERE concurrency_keys is not null and status not in ('completed', 'failed', 'cancelled') and not (status in ('pending', 'waiting-children') and waiting_for is not null);--> statement-breakpoint
CREATE INDEX "jobs_limit_running_idx" ON "jobs" USING btree ("user_id") WHERE concurrency_keys is not null and status not in ('completed', 'failed', 'cancelled') and not (status in ('pending', 'waiting-children') and waiting_for is not null);