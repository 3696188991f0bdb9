-- Statement triggers that join a statement's old and new rows run those joins, for a statement of
-- more than 200 rows, as dynamic SQL planned on that call with the transition tables' real sizes.
-- As static statements, PL/pgSQL caches each one's plan from its first call in a session, usually a
-- small batch: the transition tables estimated at one row, the joins become nested loops, quadratic
-- in the batch (5,000 rows updated: 3.1 s in the trigger; as dynamic SQL, 27 ms). Smaller statements
-- keep the cached plan: planning the dynamic text on every call cost more than the loops save there
-- (single creates by 16 clients: half the rate with every call dynamic).
CREATE OR REPLACE FUNCTION flowd_flow_jobs_updated()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  any_changed boolean;
  big boolean := (SELECT count(*) FROM new_rows) > 200;
  top bigint;
BEGIN
  IF big THEN
    EXECUTE $q$SELECT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status OR n.event_pos <> o.event_pos
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending')))$q$ INTO any_changed;
  ELSE
    any_changed := EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status OR n.event_pos <> o.event_pos
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending')));
  END IF;
  IF NOT any_changed THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  -- Narrow (what decides the events); the payload is built from new_rows in the insert.
  IF big THEN
    EXECUTE $q$WITH changed AS (
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
  SELECT max(seq) FROM ins$q$ INTO top;
  ELSE
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
  END IF;
  PERFORM flowd_notify_flow_job_events(top);

  -- A tree flow follows its root: a finished root finishes the flow; a root running again (retry) reopens it.
  -- Its own trigger logs the flow's event and rings with a bare seq.
  IF big THEN
    EXECUTE $q$UPDATE flows f
  SET status = CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                             WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END,
      finished_at = CASE WHEN n.status IN ('completed', 'failed', 'cancelled') THEN now() END,
      updated_at = now()
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.parent_id IS NULL AND f.id = n.flow_id AND n.status IS DISTINCT FROM o.status AND NOT f.graph
    AND f.status IS DISTINCT FROM CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                                  WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END$q$;
  ELSE
    UPDATE flows f
  SET status = CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                             WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END,
      finished_at = CASE WHEN n.status IN ('completed', 'failed', 'cancelled') THEN now() END,
      updated_at = now()
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.parent_id IS NULL AND f.id = n.flow_id AND n.status IS DISTINCT FROM o.status AND NOT f.graph
    AND f.status IS DISTINCT FROM CASE n.status WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed'
                                  WHEN 'cancelled' THEN 'cancelled' ELSE 'running' END;
  END IF;

  -- A graph flow finishes with its last unfinished job.
  IF big THEN
    EXECUTE $q$UPDATE flows f
  SET status = CASE WHEN EXISTS (SELECT 1 FROM flow_jobs j WHERE j.flow_id = f.id AND j.status = 'failed') THEN 'failed'
                    WHEN EXISTS (SELECT 1 FROM flow_jobs j WHERE j.flow_id = f.id AND j.status = 'cancelled') THEN 'cancelled'
                    ELSE 'completed' END,
      finished_at = now(),
      updated_at = now()
  WHERE f.graph AND f.status = 'running'
    AND f.id IN (SELECT n.flow_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status AND n.status IN ('completed', 'failed', 'cancelled'))
    AND NOT EXISTS (SELECT 1 FROM flow_jobs j WHERE j.flow_id = f.id AND j.status NOT IN ('completed', 'failed', 'cancelled'))$q$;
  ELSE
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
  END IF;
  RETURN NULL;
END $function$;

--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_jobs_changed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  any_changed boolean;
  big boolean := (SELECT count(*) FROM new_rows) > 200;
  top bigint;
BEGIN
  IF big THEN
    EXECUTE $q$SELECT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status OR n.event_pos <> o.event_pos
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending')))$q$ INTO any_changed;
  ELSE
    any_changed := EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.status IS DISTINCT FROM o.status OR n.event_pos <> o.event_pos
                    OR (n.waiting_for IS DISTINCT FROM o.waiting_for AND n.status IN ('active', 'pending')));
  END IF;
  IF NOT any_changed THEN
    RETURN NULL;
  END IF;
  PERFORM flowd_lock_events();
  -- Narrow (what decides the events); the payload is built from new_rows in the insert.
  IF big THEN
    EXECUTE $q$WITH changed AS (
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
  ) SELECT max(seq) FROM ins$q$ INTO top;
  ELSE
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
  END IF;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $function$;

--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_flows_changed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  any_changed boolean;
  big boolean := (SELECT count(*) FROM new_rows) > 200;
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
    IF big THEN
      EXECUTE $q$SELECT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                   WHERE n.status IS DISTINCT FROM o.status AND n.status IN ('completed', 'failed', 'cancelled'))$q$ INTO any_changed;
    ELSE
      any_changed := EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                   WHERE n.status IS DISTINCT FROM o.status AND n.status IN ('completed', 'failed', 'cancelled'));
    END IF;
    IF NOT any_changed THEN
      RETURN NULL;
    END IF;
    PERFORM flowd_lock_events();
    IF big THEN
      EXECUTE $q$WITH ins AS (
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
    ) SELECT max(seq) FROM ins$q$ INTO top;
    ELSE
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
  END IF;
  PERFORM flowd_notify_events(top);
  RETURN NULL;
END $function$;

--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_job_reports_logged()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  any_changed boolean;
  big boolean := (SELECT count(*) FROM new_rows) > 200;
  top bigint;
BEGIN
  -- Two statements (an insert's trigger has no old rows): each is parsed only when its branch runs.
  IF TG_OP = 'UPDATE' THEN
    IF big THEN
      EXECUTE $q$SELECT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.job_row_id = n.job_row_id
                   WHERE jsonb_array_length(n.lines) > jsonb_array_length(o.lines) OR n.progress IS DISTINCT FROM o.progress)$q$ INTO any_changed;
    ELSE
      any_changed := EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.job_row_id = n.job_row_id
                   WHERE jsonb_array_length(n.lines) > jsonb_array_length(o.lines) OR n.progress IS DISTINCT FROM o.progress);
    END IF;
    IF NOT any_changed THEN
      RETURN NULL;
    END IF;
    PERFORM flowd_lock_events();
    IF big THEN
      EXECUTE $q$WITH ch AS (
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
    ) SELECT max(seq) FROM ins$q$ INTO top;
    ELSE
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
    END IF;
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
END $function$;

--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_tally_jobs()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  big boolean;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_tallies (tbl, queue, status, n)
    SELECT TG_TABLE_NAME, queue_name, status, count(*) FROM new_rows GROUP BY queue_name, status;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO job_tallies (tbl, queue, status, n)
    SELECT TG_TABLE_NAME, queue_name, status, -count(*) FROM old_rows GROUP BY queue_name, status;
  ELSE
    -- Only an update has both tables (a delete has no new rows).
    big := (SELECT count(*) FROM new_rows) > 200;
    IF big THEN
      EXECUTE $q$INSERT INTO job_tallies (tbl, queue, status, n)
    SELECT $1, queue, status, sum(d) FROM (
      SELECT o.queue_name AS queue, o.status, -1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE n.status IS DISTINCT FROM o.status OR n.queue_name IS DISTINCT FROM o.queue_name
      UNION ALL
      SELECT n.queue_name, n.status, 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE n.status IS DISTINCT FROM o.status OR n.queue_name IS DISTINCT FROM o.queue_name
    ) changes GROUP BY queue, status$q$ USING TG_TABLE_NAME;
    ELSE
      INSERT INTO job_tallies (tbl, queue, status, n)
    SELECT TG_TABLE_NAME, queue, status, sum(d) FROM (
      SELECT o.queue_name AS queue, o.status, -1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE n.status IS DISTINCT FROM o.status OR n.queue_name IS DISTINCT FROM o.queue_name
      UNION ALL
      SELECT n.queue_name, n.status, 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE n.status IS DISTINCT FROM o.status OR n.queue_name IS DISTINCT FROM o.queue_name
    ) changes GROUP BY queue, status;
    END IF;
  END IF;
  RETURN NULL;
END $function$;
