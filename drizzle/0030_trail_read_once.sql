-- flowd_trail as a plpgsql function: Postgres cannot inline it, so each trigger reads and parses the
-- batch's trail (flowd.trail) once into the function scan's tuplestore and hashes or rescans that.
-- Inlined (0029's SQL function), the parse of the whole trail ran again for every changed row: a
-- 1,000-job batch took seconds and the recorder fell minutes behind under bulk load.
CREATE OR REPLACE FUNCTION flowd_trail(tbl text) RETURNS TABLE (job_id text, status text, pos bigint, ord integer)
LANGUAGE plpgsql STABLE ROWS 1000 AS $$
BEGIN
  RETURN QUERY
    SELECT t.job_id, t.status, t.pos, t.ord
    FROM jsonb_to_recordset(coalesce(nullif(current_setting('flowd.trail', true), ''), '[]')::jsonb)
      AS t(tbl text, job_id text, status text, pos bigint, ord integer)
    WHERE t.tbl = flowd_trail.tbl;
END
$$;
