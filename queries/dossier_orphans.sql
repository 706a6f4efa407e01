-- dossier_orphans: the dossiers that have events but no `received` event
-- (orphans, docs/events.md), each with its first event. They count in no
-- figure; chiso keeps them aside, next to the derived tables, for the next
-- ingest: when a later `received` (or any other event) touches one, the
-- update reads that dossier's events from its first one on, and no earlier.
--
-- Derived after dossier_milestones.sql, over the same chunk of events
-- (queries/README.md, "Parameters").
SELECT
    e.dossier_id,
    min(e.occurred_at) AS first_event_at
FROM events e
WHERE NOT EXISTS (
    SELECT 1 FROM dossier_milestones m WHERE m.dossier_id = e.dossier_id
)
GROUP BY e.dossier_id
ORDER BY e.dossier_id
