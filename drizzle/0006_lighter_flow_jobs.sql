-- A 1,000-job flow's insert spent a quarter of its time checking flow_jobs.flow_id against flows,
-- once per row, for rows written in the same statement as their flow; and nothing looks jobs up by
-- parent_id (a flow's jobs are always read whole, by flow_id). Both go.
ALTER TABLE "flow_jobs" DROP CONSTRAINT "flow_jobs_flow_id_flows_id_fk";
--> statement-breakpoint
DROP INDEX "flow_jobs_parent_idx";
--> statement-breakpoint
-- What the key's ON DELETE CASCADE did: a flow's jobs go with it, whoever deletes it (the API, or a
-- user's deletion cascading to their flows).
CREATE OR REPLACE FUNCTION flowd_flows_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM flow_jobs j USING old_rows o WHERE j.flow_id = o.id;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER flows_delete_jobs AFTER DELETE ON flows
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flowd_flows_deleted();
