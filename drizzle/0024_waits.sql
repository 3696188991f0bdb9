ALTER TABLE "task_callbacks" ADD COLUMN "kind" text DEFAULT 'http' NOT NULL;--> statement-breakpoint
ALTER TABLE "task_callbacks" ADD COLUMN "signal_key" text;--> statement-breakpoint
ALTER TABLE "task_callbacks" ADD COLUMN "terms" jsonb;--> statement-breakpoint
ALTER TABLE "task_callbacks" ADD COLUMN "decision" jsonb;--> statement-breakpoint
CREATE INDEX "flow_jobs_parked_idx" ON "flow_jobs" USING btree ("waiting_for") WHERE "flow_jobs"."waiting_for" is not null and "flow_jobs"."status" = 'active';--> statement-breakpoint
CREATE INDEX "jobs_parked_idx" ON "jobs" USING btree ("waiting_for") WHERE "jobs"."waiting_for" is not null and "jobs"."status" = 'active';--> statement-breakpoint
CREATE INDEX "task_callbacks_signal_idx" ON "task_callbacks" USING btree ("user_id","signal_key") WHERE "task_callbacks"."signal_key" is not null and "task_callbacks"."resolution" is null;--> statement-breakpoint
CREATE INDEX "task_callbacks_approvals_idx" ON "task_callbacks" USING btree ("created_at") WHERE "task_callbacks"."kind" = 'approval' and "task_callbacks"."resolution" is null;