-- dossier_history: the events whose meaning depends on the evaluation instant
-- T, one row per event, for dossiers that have a `received` event.
--
-- Implements docs/events.md, "Deriving the dossier", for the fields that need more
-- than the earliest event of a kind:
--   * `paid_online` and `rating` come from the latest `paid` / `rated` event
--     before T. `latest_key` makes "the latest" a plain max(): it is the
--     event's instant in microseconds times 4, plus its value (paid_online:
--     1 online, 0 at the desk; rating: 2 very satisfied, 1 satisfied, 0
--     dissatisfied), so the max over the events before T, modulo 4, is the
--     latest event's value (of two in the same microsecond, the higher);
--   * `supplement_requests` counts `supplement_requested` events before T;
--   * `paused` runs from a request until the next `supplement_received`. A
--     second request while the clock is already paused does not pause it
--     twice: the pause opens at the first request after the clock last ran
--     (`opens_pause`) and ends at the next `supplement_received`
--     (`pause_ends_at`, null while unanswered).
-- The pairing does not depend on T: cutting the events at T only shortens the
-- last pause, which kpi.sql does.
--
-- The dossier's key, received_at, first_finished_at and last_event_at are
-- repeated on each row, in the order of dossier_facts (its key comes from
-- dossier_milestones.sql), so that a period reads
-- only the row groups of dossiers alive in it.
--
-- Derived chunk by chunk like dossier_milestones.sql: `events` and
-- `dossier_milestones` here are the same chunk's.
WITH supplement_events AS (
    SELECT
        dossier_id,
        event_type,
        occurred_at,
        event_id,
        -- Rounds of the clock: each `supplement_received` closes a round.
        coalesce(sum(CASE WHEN event_type = 'supplement_received' THEN 1 ELSE 0 END) OVER (
            PARTITION BY dossier_id ORDER BY occurred_at, event_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS round
    FROM events
    WHERE event_type IN ('supplement_requested', 'supplement_received')
),
pauses AS (
    SELECT
        dossier_id,
        round,
        first_value(event_id ORDER BY occurred_at, event_id)
            FILTER (WHERE event_type = 'supplement_requested') AS opening_event_id,
        min(occurred_at) FILTER (WHERE event_type = 'supplement_received') AS pause_ends_at
    FROM supplement_events
    GROUP BY dossier_id, round
),
history AS (
    SELECT
        s.dossier_id,
        s.event_type,
        s.occurred_at,
        s.event_id,
        CAST(NULL AS BOOLEAN) AS paid_online,
        CAST(NULL AS VARCHAR) AS rating,
        CAST(NULL AS BIGINT) AS latest_key,
        s.event_id = p.opening_event_id AS opens_pause,
        p.pause_ends_at
    FROM supplement_events s
    JOIN pauses p USING (dossier_id, round)
    WHERE s.event_type = 'supplement_requested'
    UNION ALL
    SELECT dossier_id, event_type, occurred_at, event_id,
           coalesce(paid_online, false), rating,
           4 * CAST(occurred_at AS BIGINT)
             + CASE
                 WHEN event_type = 'paid' THEN CASE WHEN paid_online THEN 1 ELSE 0 END
                 WHEN rating = 'very_satisfied' THEN 2
                 WHEN rating = 'satisfied' THEN 1
                 ELSE 0
               END,
           false, NULL
    FROM events
    WHERE event_type IN ('paid', 'rated')
)
SELECT
    f.dossier_key,
    h.dossier_id,
    h.event_type,
    h.occurred_at,
    h.event_id,
    h.paid_online,
    h.rating,
    h.latest_key,
    h.opens_pause,
    h.pause_ends_at,
    f.received_at AS dossier_received_at,
    f.first_finished_at AS dossier_first_finished_at,
    f.last_event_at AS dossier_last_event_at
FROM history h
JOIN dossier_milestones f USING (dossier_id)
ORDER BY f.dossier_key
