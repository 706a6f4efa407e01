"""DuckDB side of benches/kpi.sh: chiso's own KPI SQL, translated to DuckDB's
dialect by a few mechanical rewrites, over the same Parquet files.

Prints one line per query: `key cold_seconds warm_seconds`. Cold runs the
query in a new Python process (import and connection included); warm is the
best of five runs after a first one in the same connection. Before timing,
query b's counts are checked against chiso's result, so both engines are
known to compute the same figures."""
import csv
import os
import re
import subprocess
import sys
import time

import duckdb

WORK, STORE, DERIVED, QUERIES = (os.environ[k] for k in ("WORK", "STORE", "DERIVED", "QUERIES"))
TS = r"'Timestamp\(Microsecond, Some\(\"UTC\"\)\)'"


def translate(sql):
    sql = re.sub(r"arrow_cast\('([^']*)', " + TS + r"\)", r"TIMESTAMPTZ '\1'", sql)

    def to_micros(match):
        inner = match.group(1)
        keep = inner.lstrip().startswith("ceil") or inner.strip() == "NULL"
        return match.group(0) if keep else f"epoch_us({inner})"

    sql = re.sub(r"CAST\(((?:[^()]|\([^()]*\))*) AS BIGINT\)", to_micros, sql)
    sql = re.sub(r"arrow_cast\(epoch_us\(([\w.]+)\) \+ ([\w.]+), " + TS + r"\)",
                 r"(\1 + to_microseconds(CAST(\2 AS BIGINT)))", sql)
    sql = sql.replace("array_element(", "list_extract(")
    # DuckDB's discrete quantile stands in for chiso's nearest-rank aggregate
    # (it may pick the neighbouring rank; p90 is not among the checked columns).
    sql = sql.replace("percentile_nearest_rank(", "quantile_disc(")
    sql = re.sub(r"\blast_value\(", "last(", sql)
    sql = re.sub(r"\bfirst_value\(", "first(", sql)
    return sql


def connect(derived=DERIVED):
    # Timestamps stay in UTC (the ICU time zone extension may not be at hand);
    # local dates add the fixed +07:00 of Asia/Ho_Chi_Minh, as chiso does.
    con = duckdb.connect(config={"threads": os.cpu_count() or 2})
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE MACRO percent(n, d) AS CASE WHEN d = 0 THEN NULL ELSE round(n * 10000.0 / d) / 100 END")
    con.execute("CREATE MACRO local_date(t) AS CAST(CAST(t AS TIMESTAMP) + INTERVAL 7 HOUR AS DATE)")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{STORE}/events/occurred_month=*/*.parquet', hive_partitioning = true)")
    for table in ("dossier_facts", "dossier_history"):
        if os.path.isdir(f"{derived}/{table}"):
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{derived}/{table}/*.parquet')")
    for table in ("wards", "indicators_portal", "external_indicators"):
        if not os.path.exists(f"{WORK}/{table}.parquet"):
            continue  # only kpi.sh writes them; the derivation needs none
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{WORK}/{table}.parquet')")
    return con


def query(key):
    return translate(open(f"{WORK}/{key}.sql").read())


def run(con, key):
    started = time.perf_counter()
    con.execute(query(key)).fetchall()
    return time.perf_counter() - started


def derive():
    """The derived tables, made in chiso's four steps and written as chiso
    writes them (the milestones kept in memory, here a temporary table)."""
    out = f"{WORK}/duckdb-derived"
    os.makedirs(out, exist_ok=True)
    con = connect()
    history_at = open(f"{QUERIES}/history_at.sql").read()
    end_of_time = "TIMESTAMPTZ '9999-12-31T23:59:59.999999Z'"
    started = time.perf_counter()
    for table in ("dossier_milestones", "dossier_orphans", "dossier_history", "dossier_facts"):
        # DuckDB derives the whole city in one query: chiso's one-chunk case.
        sql = open(f"{QUERIES}/{table}.sql").read()
        for name, value in (("chunks", "1"), ("chunk", "0"), ("history_at", history_at), ("end_of_time", end_of_time)):
            sql = sql.replace("{{" + name + "}}", value)
        if table == "dossier_milestones":
            con.execute(f"CREATE TEMP TABLE {table} AS {translate(sql)}")
            continue
        os.makedirs(f"{out}/{table}", exist_ok=True)
        con.execute(f"COPY ({translate(sql)}) TO '{out}/{table}/chunk-0000.parquet' (FORMAT parquet)")
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{out}/{table}/*.parquet')")
    return time.perf_counter() - started


def check_b():
    con = connect()
    rows = con.execute(f"SELECT * FROM ({query('b')}) ORDER BY ward_code").fetchall()
    names = [d[0] for d in con.description]
    with open(f"{WORK}/b_chiso.csv") as f:
        chiso = list(csv.DictReader(f))
    counts = ["received", "online", "digitized", "paid_online", "resolved", "resolved_on_time", "resolved_early",
              "late_apologized", "e_result", "stopped", "in_progress", "in_progress_overdue", "awaiting_supplement",
              "rated", "satisfied", "progress_total", "progress_on_time"]
    chiso.sort(key=lambda r: r["ward_code"])
    assert len(rows) == len(chiso), (len(rows), len(chiso))
    for row, theirs in zip(rows, chiso):
        row = dict(zip(names, row))
        for name in counts:
            assert int(theirs[name]) == row[name], (row["ward_code"], name, theirs[name], row[name])


if len(sys.argv) == 2 and sys.argv[1] == "derive":
    # benches/live.sh: the full derivation alone, in seconds.
    print(f"{derive():.2f}")
    sys.exit(0)

if len(sys.argv) == 3 and sys.argv[1] == "one":
    run(connect(), sys.argv[2])
    sys.exit(0)

check_b()
print("derive", f"{derive():.2f}", "-")
for key in os.environ.get("BENCH_QUERIES", "a b c d").split():
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "one", key], check=True)
    cold = time.perf_counter() - started
    con = connect()
    run(con, key)
    warm = min(run(con, key) for _ in range(5))
    print(key, f"{cold:.2f}", f"{warm:.3f}")
