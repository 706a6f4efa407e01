-- kpi: every count and rate of docs/kpis.md, and the Decision 766 progress
-- indicator, for one or more periods, one row per period and group.
--
-- Parameters, filled in by chiso (queries/README.md):
--   periods                       the periods (dossiers.sql): their local dates
--                                     [period_start, period_end), their start
--                                     instant period_start_at and T = min(end, now)
--   dossiers                     dossiers.sql for the same periods: one row per
--                                     dossier and period it is alive in
--   group_key                     the grouping column of `dossier`
--   groups                        every group to list, even without dossiers
--   scope                         which dossiers count: true, or one ward's
--   group_columns                 the key and name columns of the result
WITH dossier AS (
    -- The derived dossier at each period's T (dossiers.sql), for the dossiers
    -- alive in that period.
    {{dossiers}}
),
counted AS (
    SELECT
        {{group_key}} AS group_key,
        received_at >= period_start_at AS intake,
        outcome = 'resolved' AND finished_at >= period_start_at AS resolved,
        finished_at >= period_start_at AS finished_in_period,
        finished_at IS NULL AS in_progress,
        -- docs/kpis.md, "Completion": on time when finished by the effective due
        -- date, or when the procedure has no due date; early (trước hạn) when
        -- it also finished on a local day before the one it was due, so never
        -- without a due date: there is no day it was due.
        effective_due_at IS NULL OR finished_at <= effective_due_at AS on_time,
        coalesce(local_date(finished_at) < local_date(effective_due_at), false) AS early,
        -- docs/kpis.md, "Backlog": overdue when the effective due date, with an
        -- open supplement request paused up to T, has passed.
        effective_due_at < period_t AS overdue,
        supplement_requests <= 1 AS at_most_one_supplement,
        rated_at >= period_start_at AS rated,
        rating IN ('very_satisfied', 'satisfied') AS satisfied,
        (CAST(finished_at AS BIGINT) - CAST(received_at AS BIGINT) - paused_us) / 86400000000.0 AS processing_days,
        d.*
    FROM dossier d
    WHERE {{scope}}
),
per_group AS (
    SELECT
        period_start,
        period_end,
        group_key,
        count(*) FILTER (WHERE intake) AS received,
        count(*) FILTER (WHERE intake AND channel = 'online') AS online,
        count(*) FILTER (WHERE intake AND channel = 'direct') AS direct,
        count(*) FILTER (WHERE intake AND channel = 'postal') AS postal,
        count(*) FILTER (WHERE intake AND full_online) AS full_online,
        count(*) FILTER (WHERE intake AND digitized) AS digitized,
        count(*) FILTER (WHERE intake AND fee_required) AS fee_required,
        count(*) FILTER (WHERE intake AND fee_required AND paid_online) AS paid_online,
        count(*) FILTER (WHERE resolved) AS resolved,
        count(*) FILTER (WHERE resolved AND on_time) AS resolved_on_time,
        count(*) FILTER (WHERE resolved AND on_time AND early) AS resolved_early,
        count(*) FILTER (WHERE resolved AND NOT on_time) AS resolved_late,
        count(*) FILTER (WHERE resolved AND NOT on_time AND apologized) AS late_apologized,
        count(*) FILTER (WHERE resolved AND e_result) AS e_result,
        count(*) FILTER (WHERE finished_in_period AND outcome = 'stopped') AS stopped,
        count(*) FILTER (WHERE finished_in_period AND outcome = 'withdrawn') AS withdrawn,
        avg(processing_days) FILTER (WHERE resolved) AS avg_processing_days,
        -- The 90th percentile by nearest rank: the ceil(0.9 n)-th smallest.
        percentile_nearest_rank(processing_days, 0.9) FILTER (WHERE resolved) AS p90_processing_days,
        count(*) FILTER (WHERE in_progress) AS in_progress,
        count(*) FILTER (WHERE in_progress AND overdue) AS in_progress_overdue,
        count(*) FILTER (WHERE in_progress AND awaiting_supplement) AS awaiting_supplement,
        count(*) FILTER (WHERE rated) AS rated,
        count(*) FILTER (WHERE rated AND satisfied) AS satisfied,
        -- docs/kpis.md, "The Decision 766 progress indicator": finished dossiers of
        -- any outcome and the backlog at T; good when on time (or within the
        -- deadline at T) with at most one supplement request.
        count(*) FILTER (WHERE finished_in_period OR in_progress) AS progress_total,
        count(*) FILTER (WHERE at_most_one_supplement AND (
            (finished_in_period AND on_time) OR (in_progress AND NOT coalesce(overdue, false))
        )) AS progress_on_time
    FROM counted
    GROUP BY period_start, period_end, group_key
),
zero_filled AS (
    -- Every group of every period, with or without dossiers.
    SELECT
        coalesce(g.period_start, c.period_start) AS period_start,
        coalesce(g.period_end, c.period_end) AS period_end,
        coalesce(g.group_key, c.group_key) AS group_key,
        g.group_name,
        coalesce(c.received, 0) AS received,
        coalesce(c.online, 0) AS online,
        coalesce(c.direct, 0) AS direct,
        coalesce(c.postal, 0) AS postal,
        coalesce(c.full_online, 0) AS full_online,
        coalesce(c.digitized, 0) AS digitized,
        coalesce(c.fee_required, 0) AS fee_required,
        coalesce(c.paid_online, 0) AS paid_online,
        coalesce(c.resolved, 0) AS resolved,
        coalesce(c.resolved_on_time, 0) AS resolved_on_time,
        coalesce(c.resolved_early, 0) AS resolved_early,
        coalesce(c.resolved_late, 0) AS resolved_late,
        coalesce(c.late_apologized, 0) AS late_apologized,
        coalesce(c.e_result, 0) AS e_result,
        coalesce(c.stopped, 0) AS stopped,
        coalesce(c.withdrawn, 0) AS withdrawn,
        c.avg_processing_days,
        c.p90_processing_days,
        coalesce(c.in_progress, 0) AS in_progress,
        coalesce(c.in_progress_overdue, 0) AS in_progress_overdue,
        coalesce(c.awaiting_supplement, 0) AS awaiting_supplement,
        coalesce(c.rated, 0) AS rated,
        coalesce(c.satisfied, 0) AS satisfied,
        coalesce(c.progress_total, 0) AS progress_total,
        coalesce(c.progress_on_time, 0) AS progress_on_time
    FROM (
        SELECT p.period_start, p.period_end, g.group_key, g.group_name
        FROM {{groups}} g CROSS JOIN {{periods}} p
    ) g
    FULL JOIN per_group c
        ON g.period_start = c.period_start AND g.group_key = c.group_key
)
-- Rates are percentages rounded to 2 decimals, null when the denominator is 0
-- (docs/kpis.md, "Counts and rates"); `percent` is chiso's UDF for exactly that.
SELECT
    period_start,
    period_end,
    {{group_columns}}
    received,
    online,
    direct,
    postal,
    percent(online, received) AS online_rate,
    full_online,
    percent(full_online, received) AS full_online_rate,
    digitized,
    percent(digitized, received) AS digitization_rate,
    fee_required,
    paid_online,
    percent(paid_online, fee_required) AS online_payment_rate,
    resolved,
    resolved_on_time,
    resolved_early,
    resolved_late,
    percent(resolved_on_time, resolved) AS on_time_rate,
    late_apologized,
    percent(late_apologized, resolved_late) AS apology_rate,
    e_result,
    percent(e_result, resolved) AS e_result_rate,
    stopped,
    withdrawn,
    round(avg_processing_days, 2) AS avg_processing_days,
    round(p90_processing_days, 2) AS p90_processing_days,
    in_progress,
    in_progress_overdue,
    awaiting_supplement,
    rated,
    satisfied,
    percent(satisfied, rated) AS satisfaction_rate,
    progress_total,
    progress_on_time,
    percent(progress_on_time, progress_total) AS progress_ratio,
    round(20 * percent(progress_on_time, progress_total) / 100, 2) AS progress_points
FROM zero_filled
ORDER BY period_start, group_key
