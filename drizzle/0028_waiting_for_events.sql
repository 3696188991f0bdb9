-- A job that parks or un-parks without changing status (a join, a wait step, a per-key limit, a
-- graph job released from its dependencies) is logged too: `job.updated` is written when a row's
-- status changes, or when the `waiting_for` of an `active` or `pending` row does. Every job.updated
-- event (and a spawned job's insert event) carries `waitingFor` in the shape job views use
-- (src/scheduling/waiting-for.ts) while the job waits; an event without it says nothing holds the job.

-- Timestamps as JavaScript's toISOString writes them (what views show).
CREATE OR REPLACE FUNCTION flowd_iso(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
--> statement-breakpoint
-- A view's `waitingFor` from a row's columns (jobView, graphJobs and singleJobView say the same).
-- `child_keys`: a join's awaited jobs by key, looked up by the caller only for `children` rows
-- (a subquery here would keep Postgres from inlining this into the triggers' statements).
CREATE OR REPLACE FUNCTION flowd_waiting_for(status text, waiting_for text, parked_until timestamptz, signal_key jsonb,
                                             concurrency_keys text[], rate_key text, child_keys jsonb,
                                             debounce_key text, debounce_until timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN waiting_for IS NULL THEN NULL
    -- Wait steps: while the row is parked, with a signal's key and the deadline (one 100 years off means none).
    WHEN waiting_for IN ('sleep', 'signal', 'approval') THEN
      CASE WHEN status = 'active' AND parked_until IS NOT NULL THEN
        jsonb_build_object('reason', waiting_for)
        || CASE WHEN waiting_for = 'signal' AND jsonb_typeof(signal_key) = 'string' THEN jsonb_build_object('key', signal_key) ELSE '{}'::jsonb END
        || CASE WHEN parked_until - now() < interval '18250 days' THEN jsonb_build_object('until', flowd_iso(parked_until)) ELSE '{}'::jsonb END
      END
    WHEN waiting_for = 'concurrency' THEN
      CASE WHEN status = 'pending' AND concurrency_keys[1] IS NOT NULL THEN jsonb_build_object('reason', waiting_for, 'key', concurrency_keys[1]) END
    WHEN waiting_for = 'rateLimit' THEN
      CASE WHEN status = 'pending' AND rate_key IS NOT NULL THEN jsonb_build_object('reason', waiting_for, 'key', rate_key) END
    WHEN waiting_for = 'children' THEN
      jsonb_build_object('reason', waiting_for) || CASE WHEN child_keys IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('keys', child_keys) END
    ELSE
      jsonb_build_object('reason', waiting_for)
      || CASE WHEN debounce_key IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('key', debounce_key) END
      || CASE WHEN debounce_until IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('until', flowd_iso(debounce_until)) END
  END
$$;
--> statement-breakpoint
-- The keys of the jobs a join waits for, in the order it named them (a row id when a job has no key).
CREATE OR REPLACE FUNCTION flowd_join_keys(waits_on jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(coalesce(p.key, e.id) ORDER BY e.ord), '[]'::jsonb)
  FROM jsonb_array_elements_text(waits_on) WITH ORDINALITY AS e(id, ord)
  LEFT JOIN flow_jobs p ON p.id = e.id
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_with_waiting_for(data jsonb, waiting jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN waiting IS NULL THEN data ELSE data || jsonb_build_object('waitingFor', waiting) END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_flow_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending'))) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  WITH ins AS (
    INSERT INTO events (user_id, flow_id, job_id, type, status, data)
    SELECT n.user_id, n.flow_id, n.id, 'job.updated', n.status,
           flowd_with_waiting_for(
             flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error)
               || CASE WHEN n.key IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('key', n.key) END,
             flowd_waiting_for(n.status, n.waiting_for, n.parked_until, CASE WHEN n.waiting_for = 'signal' THEN n.data->'key' END,
                               n.concurrency_keys, n.rate_key,
                               CASE WHEN n.waiting_for = 'children' AND n.waits_on IS NOT NULL THEN flowd_join_keys(n.waits_on) END,
                               NULL, NULL))
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
       OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending'))
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
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending'))) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  WITH ins AS (
    INSERT INTO events (user_id, job_id, type, status, data)
    SELECT n.user_id, n.id, 'job.updated', n.status,
           flowd_with_waiting_for(
             flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error),
             flowd_waiting_for(n.status, n.waiting_for, n.parked_until, CASE WHEN n.waiting_for = 'signal' THEN n.data->'key' END,
                               n.concurrency_keys, n.rate_key, NULL, n.debounce_key, n.debounce_until))
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status
       OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending'))
    ORDER BY n.updated_at, n.id
    RETURNING seq
  ) SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
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
           flowd_with_waiting_for(
             flowd_job_event_data(n.id, n.job_id, n.name, n.queue_name, n.attempts_made, n.result, n.error)
               || jsonb_strip_nulls(jsonb_build_object('key', n.key, 'spawnedBy', n.spawned_by, 'dependsOn', n.depends_on)),
             flowd_waiting_for(n.status, n.waiting_for, n.parked_until, NULL, n.concurrency_keys, n.rate_key, NULL, NULL, NULL))
    FROM new_rows n
    WHERE n.spawned_by IS NOT NULL
    ORDER BY n.created_at, n.id
    RETURNING seq
  )
  SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_flow_job_events(top);
  RETURN NULL;
END $$;
