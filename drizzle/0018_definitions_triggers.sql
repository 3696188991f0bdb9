CREATE TABLE "definition_versions" (
	"definition_id" text NOT NULL,
	"version" integer NOT NULL,
	"description" text,
	"input_schema" jsonb,
	"flow" jsonb NOT NULL,
	"hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "definition_versions_definition_id_version_pk" PRIMARY KEY("definition_id","version")
);
--> statement-breakpoint
CREATE TABLE "definitions" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"name" text NOT NULL,
	"latest_version" integer DEFAULT 0 NOT NULL,
	"deleted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "published_events" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"event_key" text NOT NULL,
	"topic" text NOT NULL,
	"payload" jsonb,
	"matched" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "triggers" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"topic" text NOT NULL,
	"definition" text NOT NULL,
	"version" integer,
	"filter" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "schedules" ALTER COLUMN "job_name" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "schedules" ALTER COLUMN "job_data" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "schedules" ALTER COLUMN "job_opts" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "flows" ADD COLUMN "definition" text;--> statement-breakpoint
ALTER TABLE "flows" ADD COLUMN "definition_version" integer;--> statement-breakpoint
ALTER TABLE "flows" ADD COLUMN "schedule_id" text;--> statement-breakpoint
ALTER TABLE "flows" ADD COLUMN "event_id" text;--> statement-breakpoint
ALTER TABLE "schedules" ADD COLUMN "run_definition" text;--> statement-breakpoint
ALTER TABLE "schedules" ADD COLUMN "run_version" integer;--> statement-breakpoint
ALTER TABLE "schedules" ADD COLUMN "run_input" jsonb;--> statement-breakpoint
ALTER TABLE "schedules" ADD COLUMN "catch_up" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "definition_versions" ADD CONSTRAINT "definition_versions_definition_id_definitions_id_fk" FOREIGN KEY ("definition_id") REFERENCES "public"."definitions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "definitions" ADD CONSTRAINT "definitions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "published_events" ADD CONSTRAINT "published_events_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "triggers" ADD CONSTRAINT "triggers_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "definitions_user_name_idx" ON "definitions" USING btree ("user_id","name");--> statement-breakpoint
CREATE INDEX "definitions_user_created_idx" ON "definitions" USING btree ("user_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE UNIQUE INDEX "published_events_user_key_idx" ON "published_events" USING btree ("user_id","event_key");--> statement-breakpoint
CREATE INDEX "published_events_created_idx" ON "published_events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "published_events_user_created_idx" ON "published_events" USING btree ("user_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "triggers_user_topic_idx" ON "triggers" USING btree ("user_id","topic");--> statement-breakpoint
CREATE INDEX "triggers_user_created_idx" ON "triggers" USING btree ("user_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "flows_user_definition_idx" ON "flows" USING btree ("user_id","definition","created_at" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "flows"."definition" is not null;--> statement-breakpoint
CREATE INDEX "flows_schedule_idx" ON "flows" USING btree ("schedule_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "flows"."schedule_id" is not null;--> statement-breakpoint
CREATE INDEX "flows_event_idx" ON "flows" USING btree ("event_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST) WHERE "flows"."event_id" is not null;