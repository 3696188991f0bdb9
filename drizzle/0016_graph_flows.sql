ALTER TABLE "flow_jobs" ADD COLUMN "key" text;--> statement-breakpoint
ALTER TABLE "flow_jobs" ADD COLUMN "depends_on" jsonb;--> statement-breakpoint
ALTER TABLE "flow_jobs" ADD COLUMN "waiting_for" text;--> statement-breakpoint
ALTER TABLE "flows" ADD COLUMN "graph" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "flow_jobs_held_idx" ON "flow_jobs" USING btree ("flow_id") WHERE "flow_jobs"."waiting_for" is not null;