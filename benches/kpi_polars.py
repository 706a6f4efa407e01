"""Polars side of benches/kpi.sh: query b (every KPI of one month, by ward)
written as a Polars lazy query over chiso's derived dossier tables, following
queries/dossiers.sql and queries/kpi.sql step by step.

Prints `b cold_seconds warm_seconds` (cold: a new process; warm: the best of
five runs after a first). Checks its counts against chiso's result first."""
import csv
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import polars as pl

WORK, DERIVED = os.environ["WORK"], os.environ["DERIVED"]
START = datetime(2025, 6, 30, 17, tzinfo=timezone.utc)  # 2025-07-01 00:00 local
T = datetime(2025, 7, 31, 17, tzinfo=timezone.utc)  # 2025-08-01 00:00 local
LOCAL = "Asia/Ho_Chi_Minh"
c = pl.col


def before_t(name):
    return pl.when(c(name) < T).then(c(name))


def month_by_ward():
    facts = pl.scan_parquet(f"{DERIVED}/dossier_facts/*.parquet")
    history = pl.scan_parquet(f"{DERIVED}/dossier_history/*.parquet")
    history_columns = ["supplement_requests", "answered_pause_us", "open_pause_since",
                       "paid_online_code", "rated_at", "rating_code"]
    alive = facts.filter((c("received_at") < T) & ((c("last_event_at") >= START) | c("first_finished_at").is_null()))
    # As in dossiers.sql: a dossier whose events all precede T has its whole
    # history in dossier_facts; only the others aggregate theirs as of T.
    done = alive.filter(c("last_event_at") < T).with_columns(
        paid_online=c("paid_online_code") == 1,
        rating=c("rating_code").replace_strict(
            {2: "very_satisfied", 1: "satisfied", 0: "dissatisfied"}, default=None, return_dtype=pl.String
        ),
    ).drop("paid_online_code", "rating_code")
    late = alive.filter(c("last_event_at") >= T).drop(history_columns)
    at_t = (
        history.filter(
            (c("occurred_at") < T)
            & (c("dossier_received_at") < T)
            & (c("dossier_last_event_at") >= T)
        )
        .sort("occurred_at", "event_id")
        .group_by("dossier_id")
        .agg(
            supplement_requests=(c("event_type") == "supplement_requested").sum(),
            answered_pause_us=(c("pause_ends_at") - c("occurred_at"))
            .dt.total_microseconds()
            .filter(c("opens_pause") & (c("pause_ends_at") < T))
            .sum(),
            open_pause_since=c("occurred_at")
            .filter(c("opens_pause") & (c("pause_ends_at").is_null() | (c("pause_ends_at") >= T)))
            .min(),
            paid_online=c("paid_online").filter(c("event_type") == "paid").last(),
            rated_at=c("occurred_at").filter(c("event_type") == "rated").max(),
            rating=c("rating").filter(c("event_type") == "rated").last(),
        )
    )
    late = late.join(at_t, on="dossier_id", how="left")
    d = pl.concat([done, late], how="diagonal_relaxed").with_columns(
        supplement_requests=c("supplement_requests").fill_null(0),
        answered_pause_us=c("answered_pause_us").fill_null(0),
        finished_at=pl.coalesce(
            before_t("resolved_at"),
            before_t("returned_at"),
            pl.min_horizontal(before_t("stopped_at"), before_t("withdrawn_at")),
        ),
        outcome=pl.when((c("resolved_at") < T) | (c("returned_at") < T)).then(pl.lit("resolved"))
        .when(c("stopped_at") < T).then(pl.lit("stopped"))
        .when(c("withdrawn_at") < T).then(pl.lit("withdrawn"))
        .otherwise(pl.lit("pending")),
        e_result=((c("resolved_at") < T) & c("resolved_e_result")).fill_null(False),
        digitized=(c("digitized_at") < T).fill_null(False),
        apologized=(c("apologized_at") < T).fill_null(False),
    )
    d = d.with_columns(
        paused_us=c("answered_pause_us")
        + pl.when(c("open_pause_since").is_null()).then(0).otherwise(
            pl.max_horizontal(
                0, (pl.coalesce(c("finished_at"), pl.lit(T)) - c("open_pause_since")).dt.total_microseconds()
            )
        )
    ).with_columns(effective_due_at=c("due_at") + pl.duration(microseconds=c("paused_us")))
    on_time = c("effective_due_at").is_null() | (c("finished_at") <= c("effective_due_at"))
    early = c("effective_due_at").is_null() | (
        c("finished_at").dt.convert_time_zone(LOCAL).dt.date() < c("effective_due_at").dt.convert_time_zone(LOCAL).dt.date()
    )
    intake = c("received_at") >= START
    finished = c("finished_at") >= START
    resolved = finished & (c("outcome") == "resolved")
    in_progress = c("finished_at").is_null()
    overdue = c("effective_due_at") < T
    rated = c("rated_at") >= START
    good = (c("supplement_requests") <= 1) & ((finished & on_time) | (in_progress & ~overdue.fill_null(False)))
    days = (c("finished_at") - c("received_at")).dt.total_microseconds() - c("paused_us")
    per_ward = d.group_by("ward_code").agg(
        received=intake.sum(),
        online=(intake & (c("channel") == "online")).sum(),
        digitized=(intake & c("digitized")).sum(),
        paid_online=(intake & c("fee_required") & c("paid_online").fill_null(False)).sum(),
        resolved=resolved.sum(),
        resolved_on_time=(resolved & on_time).sum(),
        resolved_early=(resolved & on_time & early).sum(),
        late_apologized=(resolved & ~on_time & c("apologized")).sum(),
        e_result=(resolved & c("e_result")).sum(),
        stopped=(finished & (c("outcome") == "stopped")).sum(),
        avg_processing_days=(days.filter(resolved) / 86_400_000_000).mean(),
        in_progress=in_progress.sum(),
        in_progress_overdue=(in_progress & overdue).sum(),
        awaiting_supplement=(in_progress & c("open_pause_since").is_not_null()).sum(),
        rated=rated.fill_null(False).sum(),
        satisfied=(rated & c("rating").is_in(["very_satisfied", "satisfied"])).fill_null(False).sum(),
        progress_total=(finished.fill_null(False) | in_progress).sum(),
        progress_on_time=good.fill_null(False).sum(),
    )
    wards = pl.scan_parquet(f"{WORK}/wards.parquet").select("ward_code", "ward_name")
    return wards.join(per_ward, on="ward_code", how="left").sort("ward_code").collect()


def check(result):
    with open(f"{WORK}/b_chiso.csv") as f:
        chiso = {row["ward_code"]: row for row in csv.DictReader(f)}
    names = [n for n in result.columns if n not in ("ward_code", "ward_name", "avg_processing_days")]
    for row in result.iter_rows(named=True):
        for name in names:
            assert int(chiso[row["ward_code"]][name]) == (row[name] or 0), (row["ward_code"], name)


if len(sys.argv) == 2 and sys.argv[1] == "one":
    month_by_ward()
    sys.exit(0)

check(month_by_ward())
started = time.perf_counter()
subprocess.run([sys.executable, __file__, "one"], check=True)
cold = time.perf_counter() - started
month_by_ward()
warm = []
for _ in range(5):
    started = time.perf_counter()
    month_by_ward()
    warm.append(time.perf_counter() - started)
print("b", f"{cold:.2f}", f"{min(warm):.3f}")
