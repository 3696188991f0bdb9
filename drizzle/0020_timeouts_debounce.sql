ALTER TABLE "jobs" ADD COLUMN "waiting_for" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "debounce_key" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "debounce_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "debounced" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "flow_jobs_expiry_idx" ON "flow_jobs" USING btree ("ready_at") WHERE "flow_jobs"."status" = 'waiting' and "flow_jobs"."started_at" is null and ("flow_jobs"."opts" ->> 'expireAfterMs') is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_user_debounce_idx" ON "jobs" USING btree ("user_id","debounce_key") WHERE "jobs"."waiting_for" = 'debounce' and "jobs"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "jobs_expiry_idx" ON "jobs" USING btree ("ready_at") WHERE "jobs"."status" = 'waiting' and "jobs"."started_at" is null and ("jobs"."opts" ->> 'expireAfterMs') is not null;--> statement-breakpoint
CREATE INDEX "jobs_debounce_until_idx" ON "jobs" USING btree ("debounce_until") WHERE "jobs"."waiting_for" = 'debounce' and "jobs"."status" = 'pending';