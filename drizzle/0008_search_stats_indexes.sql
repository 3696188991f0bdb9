CREATE INDEX "flow_jobs_root_data_idx" ON "flow_jobs" USING gin ("data" jsonb_path_ops) WHERE "flow_jobs"."parent_id" is null;--> statement-breakpoint
CREATE INDEX "flow_jobs_user_status_idx" ON "flow_jobs" USING btree ("user_id","status");--> statement-breakpoint
CREATE INDEX "flow_jobs_user_finished_idx" ON "flow_jobs" USING btree ("user_id","updated_at") WHERE "flow_jobs"."status" in ('completed', 'failed');--> statement-breakpoint
CREATE INDEX "flows_user_name_idx" ON "flows" USING btree ("user_id","name" text_pattern_ops);--> statement-breakpoint
CREATE INDEX "jobs_data_idx" ON "jobs" USING gin ("data" jsonb_path_ops);--> statement-breakpoint
CREATE INDEX "jobs_user_finished_idx" ON "jobs" USING btree ("user_id","updated_at") WHERE "jobs"."status" in ('completed', 'failed');