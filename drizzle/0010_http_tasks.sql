CREATE TABLE "signing_secrets" (
	"user_id" text PRIMARY KEY NOT NULL,
	"secret" text NOT NULL,
	"previous_secret" text,
	"previous_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"rotated_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "task_callbacks" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"table_name" text NOT NULL,
	"job_id" text NOT NULL,
	"queue_name" text NOT NULL,
	"attempt" integer NOT NULL,
	"parked_at" timestamp with time zone,
	"deadline" timestamp with time zone NOT NULL,
	"heartbeat_timeout_ms" integer,
	"heartbeat_deadline" timestamp with time zone,
	"outcome" jsonb,
	"resolution" text,
	"resolved_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "flow_jobs" ADD COLUMN "parked_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "parked_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "signing_secrets" ADD CONSTRAINT "signing_secrets_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "task_callbacks_job_idx" ON "task_callbacks" USING btree ("job_id","attempt");--> statement-breakpoint
CREATE INDEX "task_callbacks_created_idx" ON "task_callbacks" USING btree ("created_at");