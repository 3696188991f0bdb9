ALTER TABLE "flow_jobs" ADD COLUMN "shard" smallint;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "shard" smallint;--> statement-breakpoint
ALTER TABLE "schedules" ADD COLUMN "shard" smallint;