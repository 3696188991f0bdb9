-- Triggers keep job_tallies and delivery_tallies, so /metrics never counts whole tables. They only
-- append signed deltas, one row per (table, queue, status) a statement touched: concurrent writers
-- never wait on a shared counter row. flowd_job_tallies() folds the deltas when it reads them.

CREATE OR REPLACE FUNCTION flowd_tally_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_tallies (tbl, queue, status, n)
    SELECT TG_TABLE_NAME, queue_name, status, count(*) FROM new_rows GROUP BY queue_name, status;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO job_tallies (tbl, queue, status, n)
    SELECT TG_TABLE_NAME, queue_name, status, -count(*) FROM old_rows GROUP BY queue_name, status;
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
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER flow_jobs_tally_insert AFTER INSERT ON flow_jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_jobs();
--> statement-breakpoint
CREATE TRIGGER flow_jobs_tally_update AFTER UPDATE ON flow_jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_jobs();
--> statement-breakpoint
CREATE TRIGGER flow_jobs_tally_delete AFTER DELETE ON flow_jobs
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_jobs();
--> statement-breakpoint
CREATE TRIGGER jobs_tally_insert AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_jobs();
--> statement-breakpoint
CREATE TRIGGER jobs_tally_update AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_jobs();
--> statement-breakpoint
CREATE TRIGGER jobs_tally_delete AFTER DELETE ON jobs
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_jobs();
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_tally_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO delivery_tallies (outcome, n)
  SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered'
              WHEN status_code IS NULL THEN 'network_error' ELSE 'rejected' END, count(*)
  FROM new_rows GROUP BY 1;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER webhook_deliveries_tally AFTER INSERT ON webhook_deliveries
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_tally_deliveries();
--> statement-breakpoint
-- Reads the tallies, first folding the deltas into one row per key. The lock makes concurrent
-- folds take turns. The read sums again: deltas committed between the fold and the read (each
-- statement here takes a new snapshot) must not show up as a second row for a key. A key whose
-- count falls to 0 keeps its row, so its series reads 0 instead of vanishing.
CREATE OR REPLACE FUNCTION flowd_job_tallies() RETURNS TABLE (tbl text, queue text, status text, n bigint)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7244119003);
  WITH gone AS (DELETE FROM job_tallies RETURNING *)
  INSERT INTO job_tallies (tbl, queue, status, n)
  SELECT g.tbl, g.queue, g.status, sum(g.n) FROM gone g GROUP BY 1, 2, 3;
  RETURN QUERY SELECT t.tbl, t.queue, t.status, sum(t.n)::bigint FROM job_tallies t GROUP BY 1, 2, 3;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION flowd_delivery_tallies() RETURNS TABLE (outcome text, n bigint)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7244119003);
  WITH gone AS (DELETE FROM delivery_tallies RETURNING *)
  INSERT INTO delivery_tallies (outcome, n)
  SELECT g.outcome, sum(g.n) FROM gone g GROUP BY 1;
  RETURN QUERY SELECT d.outcome, sum(d.n)::bigint FROM delivery_tallies d GROUP BY 1;
END $$;
--> statement-breakpoint
-- Rows written before these triggers existed.
INSERT INTO job_tallies (tbl, queue, status, n)
SELECT 'flow_jobs', queue_name, status, count(*) FROM flow_jobs GROUP BY 2, 3
UNION ALL
SELECT 'jobs', queue_name, status, count(*) FROM jobs GROUP BY 2, 3;
--> statement-breakpoint
INSERT INTO delivery_tallies (outcome, n)
SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN 'delivered'
            WHEN status_code IS NULL THEN 'network_error' ELSE 'rejected' END, count(*)
FROM webhook_deliveries GROUP BY 1;
