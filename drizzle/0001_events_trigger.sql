-- The event log is written by the database itself, so every writer (API, worker, a person with psql)
-- produces the same events in the same transaction as the change.
--
-- Ordering: a transaction-scoped advisory lock is taken before a sequence number is drawn, and held
-- to commit. Event-writing transactions therefore commit in seq order, so a reader that has seen seq N
-- can never later find a committed seq below N (no gaps to wait for, no event skipped).
-- NOTIFY carries only the highest seq (a doorbell, never row data: 8,000-byte limit) and is sent once
-- per statement, because NOTIFY takes a global lock at commit.

CREATE OR REPLACE FUNCTION flowd_small_json(v jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL THEN NULL
              WHEN octet_length(v::text) <= 4096 THEN v
              ELSE jsonb_build_object('truncated', true, 'bytes', octet_length(v::text)) END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_job_event_data(id text, job_id text, name text, queue_name text,
                                                attempts_made integer, result jsonb, error jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
    'id', id, 'jobId', job_id, 'name', name, 'queueName', queue_name,
    'attemptsMade', attempts_made, 'result', flowd_small_json(result), 'error', flowd_small_json(error)))
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_notify_events(max_seq bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF max_seq IS NOT NULL THEN
    PERFORM pg_notify('flowd_events', max_seq::text);
  END IF;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_lock_events() RETURNS void LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(7244119001)
$$;
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
  PERFORM flowd_notify_events(top);

  -- The flow follows its root: a finished root finishes the flow; a root running again (retry) reopens it.
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
--> statement-breakpoint
CREATE TRIGGER flow_jobs_events AFTER UPDATE ON flow_jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION flowd_flow_jobs_updated();
--> statement-breakpoint
-- Single jobs log their status changes, not their creation: the first change (pending -> waiting,
-- written by the status recorder) follows within milliseconds, and keeping the advisory lock and
-- NOTIFY off the insert lets many clients create jobs at once.
CREATE OR REPLACE FUNCTION flowd_jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.status IS DISTINCT FROM o.status) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  WITH ins AS (
    INSERT INTO events (user_id, job_id, type, status, data)
    SELECT n.user_id, n.id, 'job.updated', n.status, flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
    ORDER BY n.updated_at, n.id
    RETURNING seq
  ) SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER jobs_events_update AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION flowd_jobs_changed();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_flows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN RETURN NULL; END IF;
    PERFORM flowd_lock_events();
    WITH ins AS (
      INSERT INTO events (user_id, flow_id, type, status, data)
      SELECT n.user_id, n.id, 'flow.created', n.status, jsonb_build_object('name', n.name, 'jobCount', n.job_count)
      FROM new_rows n ORDER BY n.id
      RETURNING seq
    ) SELECT max(seq) INTO top FROM ins;
  ELSE
    IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                   WHERE n.status IS DISTINCT FROM o.status AND n.status IN ('completed', 'failed', 'cancelled')) THEN
      RETURN NULL;
    END IF;
    PERFORM flowd_lock_events();
    WITH ins AS (
      INSERT INTO events (user_id, flow_id, type, status, data)
      SELECT n.user_id, n.id, 'flow.' || n.status, n.status,
             CASE n.status
               WHEN 'completed' THEN jsonb_build_object('result',
                 (SELECT flowd_small_json(r.result) FROM flow_jobs r WHERE r.id = n.root_id))
               WHEN 'failed' THEN jsonb_build_object('errors', coalesce((
                 SELECT jsonb_agg(jsonb_build_object('id', fj.id, 'jobId', fj.job_id, 'name', fj.name,
                                                     'error', flowd_small_json(fj.error)) ORDER BY fj.updated_at)
                 FROM (SELECT * FROM flow_jobs x WHERE x.flow_id = n.id AND x.status = 'failed' LIMIT 50) fj), '[]'::jsonb))
               ELSE NULL END
      FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE n.status IS DISTINCT FROM o.status AND n.status IN ('completed', 'failed', 'cancelled')
      ORDER BY n.id
      RETURNING seq
    ) SELECT max(seq) INTO top FROM ins;
  END IF;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER flows_events_insert AFTER INSERT ON flows
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION flowd_flows_changed();
--> statement-breakpoint
CREATE TRIGGER flows_events_update AFTER UPDATE ON flows
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION flowd_flows_changed();
