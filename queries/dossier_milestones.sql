-- dossier_milestones: one row per dossier that has a `received` event: its
-- attributes, its key and the earliest event of each kind, none of which
-- depends on the evaluation instant T.
--
-- Implements docs/events.md, "Deriving the dossier": the attributes come from the
-- earliest `received` event; the milestones are the earliest event of each
-- kind, so "the earliest X before T" is "earliest X, if it is before T".
-- The fields that do depend on T (the latest payment and rating before T, the
-- supplement pauses) come from `dossier_history` (dossier_history.sql).
--
-- chiso derives this query once per version of the events table and keeps
-- it only while it derives dossier_history.sql and dossier_facts.sql, which
-- build on it; `dossier_facts` holds all of its columns. A big city is
-- derived in chunks of dossiers, one run of this query per chunk, so that
-- memory stays bounded whatever the size of the event log: `events` is then
-- the events of the chunk's dossiers (queries/README.md, "Parameters").
WITH first_received AS (
    SELECT *
    FROM (
        SELECT
            dossier_id,
            occurred_at AS received_at,
            ward_code,
            procedure_code,
            department_code,
            channel,
            coalesce(full_online, false) AS full_online,
            due_at,
            coalesce(fee_required, false) AS fee_required,
            row_number() OVER (PARTITION BY dossier_id ORDER BY occurred_at, event_id) AS nth
        FROM events
        WHERE event_type = 'received'
    )
    WHERE nth = 1
),
milestones AS (
    SELECT
        dossier_id,
        count(*) FILTER (WHERE event_type = 'received') AS received_events,
        min(occurred_at) FILTER (WHERE event_type = 'resolved') AS resolved_at,
        -- e_result of the earliest `resolved` (a tie in time goes to the one
        -- with an electronic result): the smallest of (instant, no e-result),
        -- packed into one integer so that a plain min() finds it.
        min(CAST(occurred_at AS BIGINT) * 2 + CASE WHEN e_result THEN 0 ELSE 1 END)
            FILTER (WHERE event_type = 'resolved') % 2 = 0 AS resolved_e_result,
        min(occurred_at) FILTER (WHERE event_type = 'returned') AS returned_at,
        min(occurred_at) FILTER (WHERE event_type = 'stopped') AS stopped_at,
        min(occurred_at) FILTER (WHERE event_type = 'withdrawn') AS withdrawn_at,
        min(occurred_at) FILTER (WHERE event_type = 'digitized') AS digitized_at,
        min(occurred_at) FILTER (WHERE event_type = 'apologized') AS apologized_at,
        min(occurred_at) AS first_event_at,
        max(occurred_at) AS last_event_at
    FROM events
    GROUP BY dossier_id
)
SELECT
    -- A compact key for joins, unique across chunks. Within a chunk, keys (and
    -- rows) run by how long the dossier lived (last event within 8 days of
    -- reception, within 64 days, longer, still unfinished), then by
    -- reception: in each class, a row group's received_at and last_event_at
    -- both span a short time, so a period skips, by their statistics alone,
    -- the row groups received after it and those that ended before it. (By
    -- last event alone, the few long-lived dossiers of every row group
    -- stretched its received_at back to the start of the year.)
    {{chunks}} * row_number() OVER (
        ORDER BY CASE
                     WHEN least(m.resolved_at, m.returned_at, m.stopped_at, m.withdrawn_at) IS NULL THEN 3
                     WHEN m.last_event_at < r.received_at + INTERVAL '8 days' THEN 0
                     WHEN m.last_event_at < r.received_at + INTERVAL '64 days' THEN 1
                     ELSE 2
                 END,
                 r.received_at,
                 r.dossier_id
    ) + {{chunk}} AS dossier_key,
    r.dossier_id,
    r.received_at,
    r.ward_code,
    r.procedure_code,
    r.department_code,
    r.channel,
    r.full_online,
    r.due_at,
    r.fee_required,
    m.received_events,
    m.resolved_at,
    m.resolved_e_result,
    m.returned_at,
    m.stopped_at,
    m.withdrawn_at,
    m.digitized_at,
    m.apologized_at,
    -- The first end of processing of any kind: a dossier finished before the
    -- start of a period counts in none of its figures.
    least(m.resolved_at, m.returned_at, m.stopped_at, m.withdrawn_at) AS first_finished_at,
    -- The first and last events of any kind (the first may precede the
    -- reception: events arrive in any order). An ingest's update reads the
    -- touched dossiers' events from the first on only.
    m.first_event_at,
    m.last_event_at
FROM first_received r
JOIN milestones m USING (dossier_id)
-- No ORDER BY: dossier_facts.sql and dossier_history.sql order their rows.
