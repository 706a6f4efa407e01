-- kpi_change: a period's KPIs against the period just before it (week over
-- week, month over month, …), per group, for the weekly review.
--
-- Every column of kpi.sql for the current period, then the change of each
-- rate in percentage points (null when either period has no denominator),
-- the change in dossiers received, and the group's rank in the current
-- period on the Decision 766 progress ratio (1 = best; ties share a rank).
--
-- Parameters, filled in by chiso (queries/README.md):
--   current, previous  kpi.sql for the period and the one before it
--   same_group             how a row of one matches a row of the other
SELECT
    c.*,
    p.period_start AS previous_period_start,
    c.received - p.received AS received_change,
    round(c.online_rate - p.online_rate, 2) AS online_rate_change,
    round(c.full_online_rate - p.full_online_rate, 2) AS full_online_rate_change,
    round(c.digitization_rate - p.digitization_rate, 2) AS digitization_rate_change,
    round(c.online_payment_rate - p.online_payment_rate, 2) AS online_payment_rate_change,
    round(c.on_time_rate - p.on_time_rate, 2) AS on_time_rate_change,
    round(c.apology_rate - p.apology_rate, 2) AS apology_rate_change,
    round(c.e_result_rate - p.e_result_rate, 2) AS e_result_rate_change,
    round(c.satisfaction_rate - p.satisfaction_rate, 2) AS satisfaction_rate_change,
    round(c.progress_ratio - p.progress_ratio, 2) AS progress_ratio_change,
    c.in_progress_overdue - p.in_progress_overdue AS in_progress_overdue_change,
    CASE WHEN c.progress_ratio IS NOT NULL
        THEN rank() OVER (PARTITION BY c.progress_ratio IS NULL ORDER BY c.progress_ratio DESC)
    END AS progress_rank
FROM ({{current}}) c
LEFT JOIN ({{previous}}) p ON {{same_group}}
