-- dossier_settled: dossier_facts.sql's rows, with the T-dependent fields of
-- each dossier as they stand after its last event (dossier_history_at.sql at
-- a T after every event).
--
-- For any T after a dossier's `last_event_at`, every event of the dossier
-- precedes T, so these are its fields at T: dossiers.sql takes them from
-- here and aggregates `dossier_history` only for the dossiers that still see
-- events at or after T (a period's most recent dossiers), instead of for
-- every dossier alive in the period.
--
-- The last step of the derivation, per chunk: `dossier_facts` and
-- `dossier_history` here are the same chunk's; the result replaces that
-- chunk of `dossier_facts`.
--
-- Parameters, filled in by chiso (queries/README.md):
--   history_at  dossier_history_at.sql for an instant after every event
SELECT
    f.*,
    coalesce(h.supplement_requests, 0) AS settled_supplement_requests,
    coalesce(h.answered_pause_us, 0) AS settled_answered_pause_us,
    h.open_pause_since AS settled_open_pause_since,
    h.paid_online_code AS settled_paid_online_code,
    h.rated_at AS settled_rated_at,
    h.rating_code AS settled_rating_code
FROM dossier_facts f
LEFT JOIN ({{history_at}}) h USING (dossier_key)
ORDER BY f.dossier_key
