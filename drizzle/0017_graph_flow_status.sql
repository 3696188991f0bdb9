-- Graph flows (flows.graph) have no root for the flow to follow: such a flow finishes when its last
-- job does — failed if any job failed, cancelled if jobs were cancelled and none failed, completed
-- otherwise. Tree flows still follow their root, exactly as before.

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
    SELECT n.user_id, n.flow_id, n.id, 'job.updated', n.status,
           flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error)
             || CASE WHEN n.key IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('key', n.key) END
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
    ORDER BY n.updated_at, n.id
    RETURNING seq
  )
  SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_flow_job_events(top);

  -- A tree flow follows its root: a finished root finishes the flow; a root running again (retry) reopens it.
  -- Its own trigger logs the flow's event and rings with a bare seq.
  UPDATE flows f
  SET status = CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                             WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END,
      finished_at = CASE WHEN n.status IN ('completed', 'failed', 'cancelled') THEN now() END,
      updated_at = now()
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.parent_id IS NULL AND f.id = n.flow_id AND n.status IS DISTINCT FROM o.status AND NOT f.graph
    AND f.status IS DISTINCT FROM CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                                  WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END;

  -- A graph flow finishes with its last unfinished job.
  UPDATE flows f
  SET status = CASE WHEN EXISTS (SELECT 1 FROM flow_jobs j WHERE j.flow_id = f.id AND j.status = 'failed') THEN 'failed'
                    WHEN EXISTS (SELECT 1 FROM flow_jobs j WHERE j.flow_id = f.id AND j.status = 'cancelled') THEN 'cancelled'
                    ELSE 'completed' END,
      finished_at = now(),
      updated_at = now()
  WHERE f.graph AND f.status = 'running'
    AND f.id IN (SELECT n.flow_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status AND n.status IN ('completed', 'failed', 'cancelled'))
    AND NOT EXISTS (SELECT 1 FROM flow_jobs j WHERE j.flow_id = f.id AND j.status NOT IN ('completed', 'failed', 'cancelled'));
  RETURN NULL;
END $$;
