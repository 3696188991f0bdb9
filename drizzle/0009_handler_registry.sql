CREATE TABLE "handlers" (
	"queue" text NOT NULL,
	"name" text NOT NULL,
	"source" text NOT NULL,
	"description" text,
	"data_schema" jsonb,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "handlers_queue_name_pk" PRIMARY KEY("queue","name")
);
--> statement-breakpoint
CREATE TABLE "job_reports" (
	"job_row_id" text PRIMARY KEY NOT NULL,
	"progress" jsonb,
	"lines" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"bytes" integer DEFAULT 0 NOT NULL,
	"dropped" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workers" (
	"id" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"pid" integer NOT NULL,
	"version" text NOT NULL,
	"queues" jsonb NOT NULL,
	"handlers" jsonb NOT NULL,
	"concurrency" integer NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
-- ctx.log lines are appended within the per-job bounds (1,000 lines, 64 KiB of text); what does not
-- fit is counted in `dropped`. The row lock serialises two writers appending to one job.
CREATE OR REPLACE FUNCTION flowd_append_job_log(row_id text, new_lines jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  kept_lines integer;
  kept_bytes integer;
  entry jsonb;
  size integer;
  taken jsonb := '[]'::jsonb;
  taken_bytes integer := 0;
  lost integer := 0;
BEGIN
  INSERT INTO job_reports (job_row_id) VALUES (row_id) ON CONFLICT (job_row_id) DO NOTHING;
  SELECT jsonb_array_length(lines), bytes INTO kept_lines, kept_bytes FROM job_reports WHERE job_row_id = row_id FOR UPDATE;
  FOR entry IN SELECT e FROM jsonb_array_elements(new_lines) AS t(e) LOOP
    size := octet_length(entry->>'line');
    IF kept_lines + jsonb_array_length(taken) < 1000 AND kept_bytes + taken_bytes + size <= 65536 THEN
      taken := taken || jsonb_build_array(entry);
      taken_bytes := taken_bytes + size;
    ELSE
      lost := lost + 1;
    END IF;
  END LOOP;
  UPDATE job_reports SET lines = lines || taken, bytes = bytes + taken_bytes, dropped = dropped + lost, updated_at = now()
  WHERE job_row_id = row_id;
END $$;
--> statement-breakpoint
-- New log lines and a new progress value become `job.log` / `job.progress` events, for the job's
-- owner (a flow job's or a single job's), under the same ordering lock and doorbell as every event.
CREATE OR REPLACE FUNCTION flowd_job_reports_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  owner text;
  flow text;
  old_len integer := 0;
  old_progress jsonb := NULL;
  added jsonb;
  top bigint;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    old_len := jsonb_array_length(OLD.lines);
    old_progress := OLD.progress;
  END IF;
  IF jsonb_array_length(NEW.lines) <= old_len AND NEW.progress IS NOT DISTINCT FROM old_progress THEN
    RETURN NULL;
  END IF;
  SELECT user_id, flow_id INTO owner, flow FROM flow_jobs WHERE id = NEW.job_row_id;
  IF owner IS NULL THEN
    SELECT user_id INTO owner FROM jobs WHERE id = NEW.job_row_id;
  END IF;
  IF owner IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  IF jsonb_array_length(NEW.lines) > old_len THEN
    SELECT jsonb_agg(e ORDER BY i) INTO added FROM jsonb_array_elements(NEW.lines) WITH ORDINALITY AS t(e, i) WHERE i > old_len;
    INSERT INTO events (user_id, flow_id, job_id, type, data)
    VALUES (owner, flow, NEW.job_row_id, 'job.log', jsonb_build_object('id', NEW.job_row_id, 'lines', flowd_small_json(added)))
    RETURNING seq INTO top;
  END IF;
  IF NEW.progress IS DISTINCT FROM old_progress THEN
    INSERT INTO events (user_id, flow_id, job_id, type, data)
    VALUES (owner, flow, NEW.job_row_id, 'job.progress', jsonb_build_object('id', NEW.job_row_id, 'progress', flowd_small_json(NEW.progress)))
    RETURNING seq INTO top;
  END IF;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER job_reports_events AFTER INSERT OR UPDATE ON job_reports
  FOR EACH ROW EXECUTE FUNCTION flowd_job_reports_changed();
