-- A flow job's status change rings the doorbell with 'j' before the seq: the events it rings for are
-- job updates of a flow, which only sockets need. An API process with long-polls waiting but no
-- socket subscribed then moves on without reading the log; every other doorbell (flow events,
-- single jobs, job logs) stays a bare seq and is read. Readers that ignore the payload are unaffected.

CREATE OR REPLACE FUNCTION flowd_notify_flow_job_events(max_seq bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF max_seq IS NOT NULL THEN
    PERFORM pg_notify('flowd_events', 'j' || max_seq::text);
  END IF;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_flow_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.status IS DISTINCT FROM o.status) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  WITH ins AS (
    INSERT INTO events (user_id, flow_id, job_id, type, status, data)
    SELECT n.user_id, n.flow_id, n.id, 'job.updated', n.status, flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
    ORDER BY n.updated_at, n.id
    RETURNING seq
  )
  SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_flow_job_events(top);

  -- The flow follows its root: a finished root finishes the flow; a root running again (retry) reopens it.
  -- Its own trigger logs the flow's event and rings with a bare seq.
  UPDATE flows f
  SET status = CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                             WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END,
      finished_at = CASE WHEN n.status IN ('completed', 'failed', 'cancelled') THEN now() END,
      updated_at = now()
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.parent_id IS NULL AND f.id = n.flow_id AND n.status IS DISTINCT FROM o.status
    AND f.status IS DISTINCT FROM CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                                  WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END;
  RETURN NULL;
END $$;
