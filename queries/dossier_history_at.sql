-- dossier_history_at: per dossier, the fields of events.md's derived dossier
-- that depend on the evaluation instant T, from its `dossier_history` events
-- before T (dossier_history.sql): the supplement requests, the pauses, and
-- the latest payment and rating.
--
-- Parameters, filled in by chiso (queries/README.md):
--   t                the evaluation instant; events at or after T are ignored
--   last_event_from  only the dossiers whose last event is at or after this
--                    instant (dossiers.sql: T; dossier_settled.sql: all)
--
-- Used twice, so that the rule is written once: by dossiers.sql at a
-- period's T, and by dossier_settled.sql with T after every event, to keep
-- the values of every dossier whose events all precede a T.
SELECT
    dossier_key,
    count(*) FILTER (WHERE event_type = 'supplement_requested') AS supplement_requests,
    -- A pause answered before T counts whole; one still open at T is
    -- measured by dossiers.sql up to T (or to the end of processing).
    sum(CAST(pause_ends_at AS BIGINT) - CAST(occurred_at AS BIGINT))
        FILTER (WHERE opens_pause AND pause_ends_at < {{t}}) AS answered_pause_us,
    min(occurred_at)
        FILTER (WHERE opens_pause AND (pause_ends_at IS NULL OR pause_ends_at >= {{t}})) AS open_pause_since,
    -- The latest payment and rating before T (latest_key: dossier_history.sql).
    max(latest_key) FILTER (WHERE event_type = 'paid') % 4 AS paid_online_code,
    max(occurred_at) FILTER (WHERE event_type = 'rated') AS rated_at,
    max(latest_key) FILTER (WHERE event_type = 'rated') % 4 AS rating_code
FROM dossier_history
WHERE occurred_at < {{t}}
  AND dossier_received_at < {{t}}
  AND dossier_last_event_at >= {{last_event_from}}
GROUP BY dossier_key
