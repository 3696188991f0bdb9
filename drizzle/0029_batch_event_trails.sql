-- Less work per job, the same log (issue #31):
--
-- * Every transition is logged, also when the status recorder folds several transitions of one job
--   into one row change (one update per job per batch). The recorder hands the earlier statuses of
--   its batch to the triggers as a transaction-local setting, `flowd.trail`: rows of (tbl, job_id,
--   status, pos, ord). For a row the recorder's statement changed, the trigger logs those of them
--   newer than the row's last recorded stream position (and not hidden by a parked http task's or
--   wait step's park), then its new state: in stream order, skipping a status the job already had.
-- * One doorbell per commit: a trigger rings only when nothing rang yet in the transaction (a
--   second time only when a commit that first rang for flow jobs' updates also logs other events).
--   The doorbell names the first seq rung for; readers read the log after what they handled, so a
--   lower seq costs nothing but a read that was going to happen.
-- * job_reports' trigger is statement-level: a batch of progress reports is one pass, one lock and
--   one doorbell instead of one each per job.

CREATE OR REPLACE FUNCTION flowd_ring(top bigint, flow_jobs_only boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  rang text := coalesce(current_setting('flowd.rang', true), '');
BEGIN
  IF top IS NULL OR rang = 'a' OR (rang = 'j' AND flow_jobs_only) THEN
    RETURN;
  END IF;
  PERFORM pg_notify('flowd_events', CASE WHEN flow_jobs_only THEN 'j' ELSE '' END || top::text);
  PERFORM set_config('flowd.rang', CASE WHEN flow_jobs_only THEN 'j' ELSE 'a' END, true);
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_notify_events(max_seq bigint) RETURNS void LANGUAGE sql AS $$
  SELECT flowd_ring(max_seq, false)
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_notify_flow_job_events(max_seq bigint) RETURNS void LANGUAGE sql AS $$
  SELECT flowd_ring(max_seq, true)
$$;
--> statement-breakpoint
-- The recorder's earlier statuses of `tbl`'s jobs in this transaction's batch (none: no rows).
CREATE OR REPLACE FUNCTION flowd_trail(tbl text) RETURNS TABLE (job_id text, status text, pos bigint, ord integer)
LANGUAGE sql STABLE AS $$
  SELECT t.job_id, t.status, t.pos, t.ord
  FROM jsonb_to_recordset(coalesce(nullif(current_setting('flowd.trail', true), ''), '[]')::jsonb)
    AS t(tbl text, job_id text, status text, pos bigint, ord integer)
  WHERE t.tbl = flowd_trail.tbl
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_flow_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status OR n.event_pos <> o.event_pos
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending'))) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  -- Narrow (what decides the events); the payload is built from new_rows in the insert.
  WITH changed AS (
    SELECT n.id, n.job_id, n.status, n.event_pos, n.updated_at, o.status AS old_status, o.event_pos AS old_pos,
           o.parked_until IS NOT NULL AS was_parked,
           n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending') AS waits_changed,
           n.event_pos <> o.event_pos AS recorded
    FROM new_rows n JOIN old_rows o ON o.id = n.id
  ),
  steps AS (
    -- The batch's earlier statuses of a recorded row, then the row's new state.
    SELECT c.id, t.status, t.pos, t.ord, false AS final
    FROM changed c JOIN flowd_trail('flow_jobs') t ON t.job_id = c.job_id
    WHERE c.recorded AND t.pos > c.old_pos
      AND NOT (c.was_parked AND t.status IN ('delayed', 'waiting', 'active'))
    UNION ALL
    SELECT c.id, c.status, CASE WHEN c.recorded THEN c.event_pos END, 2147483647, true FROM changed c
  ),
  logged AS (
    SELECT s.*, c.waits_changed, c.updated_at, coalesce(lag(s.status) OVER (PARTITION BY s.id ORDER BY s.ord), c.old_status) AS before
    FROM steps s JOIN changed c ON c.id = s.id
  ),
  ins AS (
    INSERT INTO events (user_id, flow_id, job_id, type, status, data)
    SELECT c.user_id, c.flow_id, c.id, 'job.updated', l.status,
           CASE WHEN l.final THEN
             flowd_with_waiting_for(
               flowd_job_event_data(c.id, c.job_id, c.name, c.queue_name, c.attempts_made, c.result, c.error)
                 || CASE WHEN c.key IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('key', c.key) END,
               flowd_waiting_for(c.status, c.waiting_for, c.parked_until, CASE WHEN c.waiting_for = 'signal' THEN c.data->'key' END,
                                 c.concurrency_keys, c.rate_key,
                                 CASE WHEN c.waiting_for = 'children' AND c.waits_on IS NOT NULL THEN flowd_join_keys(c.waits_on) END,
                                 NULL, NULL))
           ELSE
             flowd_job_event_data(c.id, c.job_id, c.name, c.queue_name, c.attempts_made, NULL, NULL)
               || CASE WHEN c.key IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('key', c.key) END
           END
    FROM logged l JOIN new_rows c ON c.id = l.id
    WHERE l.status IS DISTINCT FROM l.before OR (l.final AND l.waits_changed)
    -- Recorded rows in stream order, then rows other writers changed (a release, a cancel).
    ORDER BY l.updated_at, l.pos NULLS LAST, l.id, l.ord
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
                 WHERE n.status IS DISTINCT FROM o.status OR n.event_pos <> o.event_pos
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending'))) THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  -- Narrow (what decides the events); the payload is built from new_rows in the insert.
  WITH changed AS (
    SELECT n.id, n.job_id, n.status, n.event_pos, n.updated_at, o.status AS old_status, o.event_pos AS old_pos,
           o.parked_until IS NOT NULL AS was_parked,
           n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending') AS waits_changed,
           n.event_pos <> o.event_pos AS recorded
    FROM new_rows n JOIN old_rows o ON o.id = n.id
  ),
  steps AS (
    SELECT c.id, t.status, t.pos, t.ord, false AS final
    FROM changed c JOIN flowd_trail('jobs') t ON t.job_id = c.job_id
    WHERE c.recorded AND t.pos > c.old_pos
      AND NOT (c.was_parked AND t.status IN ('delayed', 'waiting', 'active'))
    UNION ALL
    SELECT c.id, c.status, CASE WHEN c.recorded THEN c.event_pos END, 2147483647, true FROM changed c
  ),
  logged AS (
    SELECT s.*, c.waits_changed, c.updated_at, coalesce(lag(s.status) OVER (PARTITION BY s.id ORDER BY s.ord), c.old_status) AS before
    FROM steps s JOIN changed c ON c.id = s.id
  ),
  ins AS (
    INSERT INTO events (user_id, job_id, type, status, data)
    SELECT c.user_id, c.id, 'job.updated', l.status,
           CASE WHEN l.final THEN
             flowd_with_waiting_for(
               flowd_job_event_data(c.id, c.job_id, c.name, c.queue_name, c.attempts_made, c.result, c.error),
               flowd_waiting_for(c.status, c.waiting_for, c.parked_until, CASE WHEN c.waiting_for = 'signal' THEN c.data->'key' END,
                                 c.concurrency_keys, c.rate_key, NULL, c.debounce_key, c.debounce_until))
           ELSE flowd_job_event_data(c.id, c.job_id, c.name, c.queue_name, c.attempts_made, NULL, NULL)
           END
    FROM logged l JOIN new_rows c ON c.id = l.id
    WHERE l.status IS DISTINCT FROM l.before OR (l.final AND l.waits_changed)
    ORDER BY l.updated_at, l.pos NULLS LAST, l.id, l.ord
    RETURNING seq
  ) SELECT max(seq) INTO top FROM ins;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
DROP TRIGGER IF EXISTS job_reports_events ON job_reports;
--> statement-breakpoint
-- New log lines and a new progress value become `job.log` / `job.progress` events for the job's
-- owner, one pass per statement (a batch of progress reports is one statement).
-- The job.log / job.progress events of reported rows (`ch`: id, lines, progress, old_len,
-- old_progress, owner, flow as JSON), log lines before progress.
CREATE OR REPLACE FUNCTION flowd_report_events(ch jsonb)
RETURNS TABLE (owner text, flow text, id text, type text, ord integer, data jsonb) LANGUAGE sql STABLE AS $$
  SELECT r.owner, r.flow, r.id, 'job.log', 1,
         jsonb_build_object('id', r.id, 'lines', flowd_small_json(
           (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(r.lines) WITH ORDINALITY AS t(e, i) WHERE i > r.old_len)))
  FROM jsonb_to_recordset(ch) AS r(id text, lines jsonb, progress jsonb, old_len integer, old_progress jsonb, owner text, flow text)
  WHERE jsonb_array_length(r.lines) > r.old_len
  UNION ALL
  SELECT r.owner, r.flow, r.id, 'job.progress', 2, jsonb_build_object('id', r.id, 'progress', flowd_small_json(r.progress))
  FROM jsonb_to_recordset(ch) AS r(id text, lines jsonb, progress jsonb, old_len integer, old_progress jsonb, owner text, flow text)
  WHERE r.progress IS DISTINCT FROM r.old_progress
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_job_reports_logged() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
BEGIN
  -- Two statements (an insert's trigger has no old rows): each is parsed only when its branch runs.
  IF TG_OP = 'UPDATE' THEN
    IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.job_row_id = n.job_row_id
                   WHERE jsonb_array_length(n.lines) > jsonb_array_length(o.lines) OR n.progress IS DISTINCT FROM o.progress) THEN
      RETURN NULL;
    END IF;
    PERFORM flowd_lock_events();
    WITH ch AS (
      SELECT n.job_row_id AS id, n.lines, n.progress, jsonb_array_length(o.lines) AS old_len, o.progress AS old_progress,
             coalesce(fj.user_id, j.user_id) AS owner, fj.flow_id AS flow
      FROM new_rows n JOIN old_rows o ON o.job_row_id = n.job_row_id
      LEFT JOIN flow_jobs fj ON fj.id = n.job_row_id
      LEFT JOIN jobs j ON fj.id IS NULL AND j.id = n.job_row_id
    ),
    ins AS (
      INSERT INTO events (user_id, flow_id, job_id, type, data)
      SELECT owner, flow, id, type, data FROM flowd_report_events(
        (SELECT coalesce(jsonb_agg(to_jsonb(ch)), '[]'::jsonb) FROM ch WHERE ch.owner IS NOT NULL)) ORDER BY id, ord
      RETURNING seq
    ) SELECT max(seq) INTO top FROM ins;
  ELSE
    IF NOT EXISTS (SELECT 1 FROM new_rows n WHERE jsonb_array_length(n.lines) > 0 OR n.progress IS NOT NULL) THEN
      RETURN NULL;
    END IF;
    PERFORM flowd_lock_events();
    WITH ch AS (
      SELECT n.job_row_id AS id, n.lines, n.progress, 0 AS old_len, NULL::jsonb AS old_progress,
             coalesce(fj.user_id, j.user_id) AS owner, fj.flow_id AS flow
      FROM new_rows n
      LEFT JOIN flow_jobs fj ON fj.id = n.job_row_id
      LEFT JOIN jobs j ON fj.id IS NULL AND j.id = n.job_row_id
    ),
    ins AS (
      INSERT INTO events (user_id, flow_id, job_id, type, data)
      SELECT owner, flow, id, type, data FROM flowd_report_events(
        (SELECT coalesce(jsonb_agg(to_jsonb(ch)), '[]'::jsonb) FROM ch WHERE ch.owner IS NOT NULL)) ORDER BY id, ord
      RETURNING seq
    ) SELECT max(seq) INTO top FROM ins;
  END IF;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER job_reports_events_insert AFTER INSERT ON job_reports
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_job_reports_logged();
--> statement-breakpoint
CREATE TRIGGER job_reports_events_update AFTER UPDATE ON job_reports
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_job_reports_logged();
