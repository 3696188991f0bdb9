CREATE TABLE "limit_keys" (
	"user_id" text NOT NULL,
	"key" text NOT NULL,
	"concurrency" integer,
	"rate_max" integer,
	"rate_per_ms" bigint,
	"rate_next_ms" bigint,
	"turn" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "limit_keys_user_id_key_pk" PRIMARY KEY("user_id","key")
);
--> statement-breakpoint
ALTER TABLE "flow_jobs" ADD COLUMN "concurrency_keys" text[];--> statement-breakpoint
ALTER TABLE "flow_jobs" ADD COLUMN "rate_key" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "concurrency_keys" text[];--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "rate_key" text;--> statement-breakpoint
ALTER TABLE "limit_keys" ADD CONSTRAINT "limit_keys_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "flow_jobs_limit_running_idx" ON "flow_jobs" USING btree ("user_id") WHERE concurrency_keys is not null and status not in ('completed', 'failed', 'cancelled') and not (status = 'pending' and waiting_for is not null);--> statement-breakpoint
CREATE INDEX "flow_jobs_limit_held_idx" ON "flow_jobs" USING btree ("user_id",(coalesce(concurrency_keys[1], rate_key)),"created_at") WHERE waiting_for in ('concurrency', 'rateLimit') and status = 'pending';--> statement-breakpoint
CREATE INDEX "jobs_limit_running_idx" ON "jobs" USING btree ("user_id") WHERE concurrency_keys is not null and status not in ('completed', 'failed', 'cancelled') and not (status = 'pending' and waiting_for is not null);--> statement-breakpoint
CREATE INDEX "jobs_limit_held_idx" ON "jobs" USING btree ("user_id",(coalesce(concurrency_keys[1], rate_key)),"created_at") WHERE waiting_for in ('concurrency', 'rateLimit') and status = 'pending';