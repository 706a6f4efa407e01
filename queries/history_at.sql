-- history_at: each dossier's payment, rating and supplement pauses as of an
-- instant T, one row per dossier and period that has any, from the rows of
-- `history_events`: dossier_history.sql's rows, as the including file chose,
-- each with the period it is read for (`period_start`) and that period's
-- instant T (`period_t`).
--
-- Implements docs/events.md, "Deriving the dossier": the latest payment and rating
-- before T, the supplement requests before T, and the pauses, answered or
-- still open at T (docs/kpis.md, "Backlog").
--
-- One definition, used twice: by dossiers.sql as of each period's T, and by
-- dossier_facts.sql as of the end of time, so that each dossier's row keeps
-- its history after its last event (all of it).
SELECT
    dossier_key,
    period_start,
    count(*) FILTER (WHERE event_type = 'supplement_requested') AS supplement_requests,
    sum(CAST(pause_ends_at AS BIGINT) - CAST(occurred_at AS BIGINT))
        FILTER (WHERE opens_pause AND pause_ends_at < period_t) AS answered_pause_us,
    min(occurred_at)
        FILTER (WHERE opens_pause AND (pause_ends_at IS NULL OR pause_ends_at >= period_t)) AS open_pause_since,
    -- The latest payment and rating before T (latest_key: dossier_history.sql).
    max(latest_key) FILTER (WHERE event_type = 'paid') % 4 AS paid_online_code,
    max(occurred_at) FILTER (WHERE event_type = 'rated') AS rated_at,
    max(latest_key) FILTER (WHERE event_type = 'rated') % 4 AS rating_code
FROM history_events
WHERE occurred_at < period_t
GROUP BY dossier_key, period_start
