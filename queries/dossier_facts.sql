-- dossier_facts: one row per dossier that has a `received` event, holding
-- everything about it that does not depend on the evaluation instant T, and
-- its history as it stands after its last event.
--
-- The milestones and attributes come from dossier_milestones.sql; the payment,
-- rating and supplement pauses are history_at.sql as of the end of time.
-- Those depend on T only while T is before the dossier's last event: a
-- period whose T comes after it (most dossiers of most periods) reads them
-- here and does not aggregate the dossier's history again (dossiers.sql).
--
-- chiso materialises this query once per version of the events table, after
-- dossier_milestones.sql and dossier_history.sql, chunk by chunk like them.
WITH history_events AS (
    -- One period, after every event.
    SELECT *, DATE '9999-12-31' AS period_start, {{end_of_time}} AS period_t
    FROM dossier_history
),
history_after_last_event AS (
{{history_at}}
)
SELECT
    m.*,
    h.supplement_requests,
    h.answered_pause_us,
    h.open_pause_since,
    h.paid_online_code,
    h.rated_at,
    h.rating_code
FROM dossier_milestones m
LEFT JOIN history_after_last_event h USING (dossier_key)
ORDER BY dossier_key
