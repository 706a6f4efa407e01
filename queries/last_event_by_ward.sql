-- last_event_by_ward: each ward of the registry with the instant of its
-- latest event up to T, null when it has none (a ward whose one-stop
-- software stopped sending: the alert rule `no_ingest`).
--
-- Parameters, filled in by chiso (queries/README.md):
--   t   the instant T: events after it do not count
SELECT w.ward_code, w.ward_name, max(f.last_event_at) AS last_event_at
FROM wards w
LEFT JOIN dossier_facts f
  ON f.ward_code = w.ward_code AND f.last_event_at <= {{t}}
GROUP BY w.ward_code, w.ward_name
ORDER BY w.ward_code
