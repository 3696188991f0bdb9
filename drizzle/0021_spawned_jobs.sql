ALTER TABLE "flow_jobs" ADD COLUMN "spawned_by" text;--> statement-breakpoint
ALTER TABLE "flow_jobs" ADD COLUMN "waits_on" jsonb;--> statement-breakpoint
-- custom SQL (re-append after regenerating): jobs added to a running flow (spawned_by set) are logged
-- as they are inserted, so views, sockets and webhooks see them appear. Rows written with their flow
-- are not: flow.created stands for them, and a 1,000-job create stays one event.
CREATE OR REPLACE FUNCTION flowd_flow_jobs_spawned() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.spawned_by IS NOT NULL) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  WITH ins AS (
    INSERT INTO events (user_id, flow_id, job_id, type, status, data)
    SELECT n.user_id, n.flow_id, n.id, 'job.updated', n.status,
           flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error)
             || jsonb_strip_nulls(jsonb_build_object('key', n.key, 'spawnedBy', n.spawned_by, 'dependsOn', n.depends_on))
    FROM new_rows n
    WHERE n.spawned_by IS NOT NULL
    ORDER BY n.created_at, n.id
    RETURNING seq
  )
  SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_flow_job_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER flow_jobs_spawned AFTER INSERT ON flow_jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_flow_jobs_spawned();
