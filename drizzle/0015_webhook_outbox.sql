CREATE TABLE "webhook_outbox" (
	"webhook_id" text NOT NULL,
	"event_seq" bigint NOT NULL,
	"user_id" text NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"handoffs" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"handed_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"traceparent" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_outbox_webhook_id_event_seq_pk" PRIMARY KEY("webhook_id","event_seq")
);
--> statement-breakpoint
ALTER TABLE "webhook_outbox" ADD CONSTRAINT "webhook_outbox_webhook_id_webhooks_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."webhooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_outbox_pending_idx" ON "webhook_outbox" USING btree ("webhook_id","next_attempt_at","event_seq") WHERE state = 'pending';--> statement-breakpoint
CREATE INDEX "webhook_outbox_user_pending_idx" ON "webhook_outbox" USING btree ("user_id","next_attempt_at") WHERE state = 'pending';--> statement-breakpoint
CREATE INDEX "webhook_outbox_due_idx" ON "webhook_outbox" USING btree ("next_attempt_at") WHERE state = 'pending';--> statement-breakpoint
CREATE INDEX "webhook_outbox_running_idx" ON "webhook_outbox" USING btree ("user_id","webhook_id") WHERE state = 'running';--> statement-breakpoint
CREATE INDEX "webhook_outbox_retrying_idx" ON "webhook_outbox" USING btree ("webhook_id") WHERE attempts > 0 and state <> 'done';--> statement-breakpoint
CREATE INDEX "webhook_outbox_done_idx" ON "webhook_outbox" USING btree ("finished_at") WHERE state = 'done';