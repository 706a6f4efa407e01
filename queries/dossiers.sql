-- dossiers: the derived dossier of docs/events.md, as of each period's
-- evaluation instant T, for every dossier with a `received` event that is alive
-- in the period: one row per dossier and period, carrying the period's columns
-- (`period_start`, `period_end`, `period_start_at`, `period_t`).
--
-- Parameters, filled in by chiso (queries/README.md):
--   periods    the periods, one row each: period_start, period_end (local
--                  dates), period_start_at (the instant it starts) and period_t
--                  (its T); events at or after T are ignored. The `dossiers`
--                  view has one period from the earliest instant to now, so it
--                  holds every dossier once
--   first_start_at, first_t, last_t  the earliest start, the earliest T and
--                  the latest T of `periods` (T never decreases along a
--                  series), which prune the scans before the periods are joined
--   history_at  history_at.sql, over `history_events` below
--
-- A series of periods is computed in one pass: each dossier joins every
-- period it is alive in, and every figure groups by period.
--
-- Implements docs/events.md, "Deriving the dossier", and the pause rule of
-- docs/kpis.md, "Backlog": an open supplement request pauses the clock up to T.
WITH alive AS (
    -- docs/kpis.md, "Periods": events at or after T are ignored, so a dossier
    -- received at or after T does not exist yet; one whose events all precede
    -- the period and that has finished counts in none of its figures.
    SELECT f.*, p.period_start, p.period_end, p.period_start_at, p.period_t
    FROM dossier_facts f
    JOIN {{periods}} p
      ON f.received_at < p.period_t
     AND (f.last_event_at >= p.period_start_at OR f.first_finished_at IS NULL)
    WHERE f.received_at < {{last_t}}
      AND (f.last_event_at >= {{first_start_at}} OR f.first_finished_at IS NULL)
),
history_events AS (
    -- The history rows that history_at.sql reads: only those of the alive
    -- dossiers with an event at or after T. For every other dossier all
    -- events precede T, so its history as of T is its whole history, which
    -- dossier_facts keeps (dossier_facts.sql).
    SELECT h.*, p.period_start, p.period_t
    FROM dossier_history h
    JOIN {{periods}} p
      ON h.dossier_received_at < p.period_t
     AND h.dossier_last_event_at >= p.period_t
    WHERE h.dossier_received_at < {{last_t}}
      AND h.dossier_last_event_at >= {{first_t}}
),
history_at_t AS (
{{history_at}}
),
at_t AS (
    -- docs/events.md, "Deriving the dossier": the latest payment and rating before
    -- T, the supplement requests before T, and the pauses (history_at.sql).
    SELECT
        * EXCLUDE (supplement_requests, answered_pause_us, open_pause_since,
                   paid_online_code, rated_at, rating_code),
        supplement_requests, answered_pause_us, open_pause_since,
        paid_online_code, rated_at, rating_code
    FROM alive
    WHERE last_event_at < period_t
    UNION ALL
    SELECT
        a.* EXCLUDE (supplement_requests, answered_pause_us, open_pause_since,
                     paid_online_code, rated_at, rating_code),
        h.supplement_requests, h.answered_pause_us, h.open_pause_since,
        h.paid_online_code, h.rated_at, h.rating_code
    FROM alive a
    LEFT JOIN history_at_t h USING (dossier_key, period_start)
    WHERE a.last_event_at >= a.period_t
),
finished AS (
    -- finished_at: the earliest `resolved`, else the earliest `returned`, else
    -- the earliest `stopped` or `withdrawn`, all before T; outcome likewise.
    SELECT
        a.* EXCLUDE (supplement_requests, answered_pause_us, open_pause_since,
                     paid_online_code, rated_at, rating_code),
        coalesce(a.supplement_requests, 0) AS supplement_requests,
        coalesce(a.answered_pause_us, 0) AS answered_pause_us,
        a.open_pause_since,
        a.paid_online_code = 1 AS paid_online,
        a.rated_at,
        CASE a.rating_code
            WHEN 2 THEN 'very_satisfied'
            WHEN 1 THEN 'satisfied'
            WHEN 0 THEN 'dissatisfied'
        END AS rating,
        CASE
            WHEN a.resolved_at < a.period_t THEN a.resolved_at
            WHEN a.returned_at < a.period_t THEN a.returned_at
            ELSE least(CASE WHEN a.stopped_at < a.period_t THEN a.stopped_at END,
                       CASE WHEN a.withdrawn_at < a.period_t THEN a.withdrawn_at END)
        END AS finished_at,
        CASE
            WHEN a.resolved_at < a.period_t OR a.returned_at < a.period_t THEN 'resolved'
            WHEN a.stopped_at < a.period_t THEN 'stopped'
            WHEN a.withdrawn_at < a.period_t THEN 'withdrawn'
            ELSE 'pending'
        END AS outcome,
        coalesce(a.resolved_at < a.period_t AND a.resolved_e_result, false) AS e_result,
        coalesce(a.digitized_at < a.period_t, false) AS digitized,
        coalesce(a.apologized_at < a.period_t, false) AS apologized
    FROM at_t a
),
paused AS (
    -- paused: answered pauses, plus a pause still open at T, which runs until
    -- T, or until finished_at if the dossier finished first.
    SELECT
        f.*,
        f.answered_pause_us + CASE
            WHEN f.open_pause_since IS NULL THEN 0
            ELSE greatest(0, CAST(coalesce(f.finished_at, f.period_t) AS BIGINT) - CAST(f.open_pause_since AS BIGINT))
        END AS paused_us
    FROM finished f
),
derived AS (
    SELECT
        p.*,
        -- effective_due_at = due_at + paused
        arrow_cast(CAST(p.due_at AS BIGINT) + p.paused_us, 'Timestamp(Microsecond, Some("UTC"))') AS effective_due_at
    FROM paused p
)
SELECT
    *,
    paused_us / 3600000000.0 AS paused_hours,
    finished_at IS NULL AND open_pause_since IS NOT NULL AS awaiting_supplement
FROM derived
