-- index_summary: the composite index of Decision 766 per ward, with its band
-- and the ward's rank in the city.
--
-- Implements docs/kpis.md, "The composite index": assessed_points (the maxima of
-- the indicators that were assessed), score (points earned) and
-- score_100 = score / assessed_points × 100, so that a partial index is never
-- mistaken for a full one; bands on score_100.
--
-- Parameters: index, index.sql for the period.
WITH detail AS (
    {{index}}
),
per_ward AS (
    SELECT
        period_start,
        period_end,
        ward_code,
        ward_name,
        count(*) FILTER (WHERE assessed) AS assessed_indicators,
        count(*) AS indicators,
        coalesce(sum(max_points) FILTER (WHERE assessed), 0) AS assessed_points,
        coalesce(sum(points), 0) AS score
    FROM detail
    GROUP BY period_start, period_end, ward_code, ward_name
),
scored AS (
    SELECT
        *,
        CASE WHEN assessed_points > 0 THEN round(100.0 * score / assessed_points, 2) END AS score_100
    FROM per_ward
)
SELECT
    period_start,
    period_end,
    ward_code,
    ward_name,
    assessed_indicators,
    indicators,
    CAST(assessed_points AS DOUBLE) AS assessed_points,
    round(score, 2) AS score,
    score_100,
    CASE
        WHEN score_100 >= 90 THEN 'excellent'
        WHEN score_100 >= 80 THEN 'good'
        WHEN score_100 >= 70 THEN 'fair'
        WHEN score_100 >= 50 THEN 'average'
        WHEN score_100 IS NOT NULL THEN 'weak'
    END AS band,
    CASE
        WHEN score_100 >= 90 THEN 'Xuất sắc'
        WHEN score_100 >= 80 THEN 'Tốt'
        WHEN score_100 >= 70 THEN 'Khá'
        WHEN score_100 >= 50 THEN 'Trung bình'
        WHEN score_100 IS NOT NULL THEN 'Yếu'
    END AS band_vi,
    CASE WHEN score_100 IS NOT NULL
        THEN rank() OVER (PARTITION BY score_100 IS NULL ORDER BY score_100 DESC)
    END AS rank
FROM scored
ORDER BY score_100 DESC NULLS LAST, ward_code
