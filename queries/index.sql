-- index: the composite index of Decision 766 (Bộ chỉ số 766) per ward, one
-- row per ward and indicator of the catalogue.
--
-- Implements docs/kpis.md, "The composite index":
--   points = max × min(1, ratio / threshold); an indicator without a ratio is
--   not assessed (never 0), so a partial index states how much it assessed.
--
-- Parameters, filled in by chiso (queries/README.md):
--   period_start, period_end  the period, matched exactly against the
--                                     external values
--   ward_kpi                      kpi.sql grouped by ward for that period
--   indicators                    the catalogue (indicators-portal.csv or
--                                     indicators-2022.csv)
WITH ward_kpi AS (
    {{ward_kpi}}
),
ratios AS (
    SELECT
        k.period_start,
        k.period_end,
        k.ward_code,
        k.ward_name,
        i.indicator_id,
        i.group_id,
        i.group_vi,
        i.group_en,
        i.name_vi,
        i.name_en,
        i.max_points,
        i.threshold,
        i.source,
        CASE i.source
            WHEN 'progress_ratio' THEN k.progress_ratio
            WHEN 'e_result_rate' THEN k.e_result_rate
            WHEN 'digitization_rate' THEN k.digitization_rate
            WHEN 'online_payment_rate' THEN k.online_payment_rate
            -- 100 − (late share + dissatisfied share); a share with no
            -- denominator counts 0; not assessed when both have none.
            WHEN 'satisfaction' THEN CASE WHEN k.resolved > 0 OR k.rated > 0 THEN
                100.0
                - coalesce(100.0 * k.resolved_late / nullif(k.resolved, 0), 0)
                - coalesce(100.0 * (k.rated - k.satisfied) / nullif(k.rated, 0), 0)
            END
            WHEN 'external' THEN x.ratio
        END AS ratio
    FROM ward_kpi k
    CROSS JOIN {{indicators}} i
    LEFT JOIN external_indicators x
        ON x.ward_code = k.ward_code
        AND x.indicator_id = i.indicator_id
        AND x.period_start = k.period_start
        AND x.period_end = k.period_end
)
SELECT
    *,
    ratio IS NOT NULL AS assessed,
    CASE WHEN ratio IS NOT NULL
        THEN round(max_points * least(1.0, greatest(0.0, ratio) / threshold), 4)
    END AS points
FROM ratios
