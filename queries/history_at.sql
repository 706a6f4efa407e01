-- history_at: each dossier's payment, rating and supplement pauses as of an
-- instant T, one row per dossier that has any, from the rows of
-- `history_events` (dossier_history.sql's rows, as the including file chose).
--
-- Implements docs/events.md, "Deriving the dossier": the latest payment and rating
-- before T, the supplement requests before T, and the pauses, answered or
-- still open at T (docs/kpis.md, "Backlog").
--
-- Parameters, filled in by chiso (queries/README.md):
--   t  the instant
--
-- One definition, used twice: by dossiers.sql as of its T, and by
-- dossier_facts.sql as of the end of time, so that each dossier's row keeps
-- its history after its last event (all of it).
SELECT
    dossier_key,
    count(*) FILTER (WHERE event_type = 'supplement_requested') AS supplement_requests,
    sum(CAST(pause_ends_at AS BIGINT) - CAST(occurred_at AS BIGINT))
        FILTER (WHERE opens_pause AND pause_ends_at < {{t}}) AS answered_pause_us,
    min(occurred_at)
        FILTER (WHERE opens_pause AND (pause_ends_at IS NULL OR pause_ends_at >= {{t}})) AS open_pause_since,
    -- The latest payment and rating before T (latest_key: dossier_history.sql).
    max(latest_key) FILTER (WHERE event_type = 'paid') % 4 AS paid_online_code,
    max(occurred_at) FILTER (WHERE event_type = 'rated') AS rated_at,
    max(latest_key) FILTER (WHERE event_type = 'rated') % 4 AS rating_code
FROM history_events
WHERE occurred_at < {{t}}
GROUP BY dossier_key
