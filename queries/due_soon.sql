-- due_soon: the dossiers in progress at the instant T that are not yet
-- overdue and are due by office close of the N-th working day after
-- T's day (docs/kpis.md, "Due soon"), soonest first.
--
-- Parameters, filled in by chiso (queries/README.md):
--   dossiers   dossiers.sql for the one instant T: each dossier as of
--                  then, its due date extended by the supplement pauses, an
--                  open one counted up to T
--   at         the instant T
--   days       N, working days ahead
--   scope      which dossiers count: true, or one ward's
SELECT
    d.ward_code,
    w.ward_name,
    d.dossier_id,
    d.procedure_code,
    p.procedure_name,
    d.channel,
    d.received_at,
    d.effective_due_at,
    -- Office hours (07:00-11:00, 13:00-17:00 on working days) from T to the
    -- due time: what an officer has left to finish.
    working_hours_between({{at}}, d.effective_due_at) AS working_hours_left,
    d.awaiting_supplement,
    {{at}} AS evaluated_at
FROM ({{dossiers}}) d
LEFT JOIN procedures p ON p.procedure_code = d.procedure_code
LEFT JOIN wards w ON w.ward_code = d.ward_code
WHERE d.finished_at IS NULL
  AND d.effective_due_at >= {{at}}
  AND d.effective_due_at <= working_day_close({{at}}, {{days}})
  AND {{scope}}
