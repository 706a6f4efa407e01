#!/usr/bin/env bash
# Analysts' SQL through every entry point, on the generator's city at SCALE,
# against DuckDB on the same Parquet files, in the same run:
#
#   b  one month by ward: kpi('2025-07', 'ward')              (103 rows)
#   d  an ad-hoc aggregate on the raw events                   (36 rows)
#   e  a 100,000-row result: July's dossiers from `dossiers`   (100,000 rows)
#
# For each: `chiso sql` in one process (the query without a protocol), POST
# /api/sql as JSON, CSV and Arrow (curl), the Postgres wire (psql), and DuckDB.
# Every time is the best of two runs after a first (warm). Then a full-size
# download: every event as CSV through /api/sql, with the server's peak memory.
#
#   benches/sql.sh [SCALE] [WORK_DIR]
#
# Needs psql (postgresql-client), curl and python3; the store, DuckDB's venv
# and the translated SQL are prepared by benches/kpi.sh.
set -euo pipefail
scale="${1:-1}"
work="${2:-${TMPDIR:-/tmp}/chiso-bench-kpi-$scale}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
bin="$CARGO_TARGET_DIR/release/chiso"
store="$work/store"
mkdir -p "$work"

B="SELECT * FROM kpi('2025-07', 'ward')"
D="SELECT occurred_month, channel, count(*) AS received FROM events WHERE event_type = 'received' GROUP BY 1, 2 ORDER BY 1, 2"
E="SELECT dossier_id, ward_code, procedure_code, channel, received_at, finished_at, outcome, supplement_requests, effective_due_at FROM dossiers WHERE received_at >= TIMESTAMP '2025-06-30T17:00:00Z' AND received_at < TIMESTAMP '2025-07-31T17:00:00Z' ORDER BY received_at, dossier_id LIMIT 100000"

# The store, the derived tables, DuckDB's venv and b.sql/d.sql (kpi.sh).
BENCH_QUERIES="b d" KEEP_DERIVED=1 "$root/benches/kpi.sh" "$scale" "$work" >"$work/kpi-bench.txt"
# DuckDB's side of e: the dossiers view of dossiers.sql at now, as DuckDB SQL.
now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
start=1970-01-01T00:00:00.000000Z
dossiers_sql=$(sed -e "s/{{start_at}}/arrow_cast('$start', 'Timestamp(Microsecond, Some(\"UTC\"))')/g" \
                   -e "s/{{t}}/arrow_cast('$now', 'Timestamp(Microsecond, Some(\"UTC\"))')/g" \
                   "$root/queries/dossiers.sql")
printf 'SELECT dossier_id, ward_code, procedure_code, channel, received_at, finished_at, outcome, supplement_requests, effective_due_at FROM (\n%s\n) WHERE received_at >= TIMESTAMPTZ %s AND received_at < TIMESTAMPTZ %s ORDER BY received_at, dossier_id LIMIT 100000\n' \
  "$dossiers_sql" "'2025-06-30 17:00:00+00'" "'2025-07-31 17:00:00+00'" >"$work/e.sql"
derived=$(ls -d "$store"/derived/events-v* | tail -1)
duck=$(BENCH_QUERIES="b d e" WORK="$work" STORE="$store" DERIVED="$derived" QUERIES="$root/queries" \
  "$CARGO_TARGET_DIR/bench-venv/bin/python" "$root/benches/kpi_duckdb.py")

# The server, HTTP and Postgres, with room for the full-size download.
users="$work/pg-users"
printf 'bench-password\n' | "$bin" pg-user add --users "$users" bench --password-stdin 2>/dev/null
"$bin" serve --store "$store" --addr 127.0.0.1:18080 --pg-addr 127.0.0.1:15433 --pg-users "$users" \
  --query-timeout-seconds 600 --query-memory-mb 4096 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:18080/health >/dev/null && break; sleep 1; done

best() { sort -n | head -1; }
now_s() { date +%s.%N; }
in_process() { # first run / best of runs 2-3 of a query in one `chiso sql` process
  printf '%s;\n%s;\n%s;\n' "$1" "$1" "$1" |
    "$bin" sql --store "$store" --timing 2>&1 >/dev/null |
    awk '/^time:/ { n++; if (n == 1) f = $2; if (n > 1 && (b == "" || $2 < b)) b = $2 } END { print f "/" b }'
}
http() { # format query
  curl -s -o /dev/null -X POST --data-binary "$2" "http://127.0.0.1:18080/api/sql?format=$1" # first
  for _ in 1 2; do
    curl -s -o /dev/null -w '%{time_total}\n' -X POST --data-binary "$2" "http://127.0.0.1:18080/api/sql?format=$1"
  done | best
}
pg() { # query
  local t0
  PGPASSWORD=bench-password psql -h 127.0.0.1 -p 15433 -U bench -d chiso -X -A -t -o /dev/null -c "$1"
  for _ in 1 2; do
    t0=$(now_s)
    PGPASSWORD=bench-password psql -h 127.0.0.1 -p 15433 -U bench -d chiso -X -A -t -o /dev/null -c "$1"
    printf '%.3f\n' "$(echo "$(now_s) - $t0" | bc)"
  done | best
}

echo "SQL entry points, scale $scale, on $(nproc) cores, $(date -u +%Y-%m-%d); warm seconds (best of 2 after a first)"
echo "(chiso sql: first run / warm. A call over a period that has ended is remembered per store version, so warm b is a lookup.)"
printf '%-24s %13s %9s %9s %9s %9s %9s\n' query "chiso sql" "HTTP json" "HTTP csv" "HTTP arrow" Postgres DuckDB
for key in b d e; do
  case $key in b) q=$B; label="b one month by ward" ;; d) q=$D; label="d ad-hoc on events" ;; e) q=$E; label="e 100k-row result" ;; esac
  printf '%-24s %13s %9s %9s %9s %9s %9s\n' "$label" "$(in_process "$q")" "$(http json "$q")" "$(http csv "$q")" \
    "$(http arrow "$q")" "$(pg "$q")" "$(echo "$duck" | awk -v k=$key '$1 == k { print $3 }')"
done

# Every event as CSV through /api/sql, and the server's memory meanwhile.
rss_peak=0
( while kill -0 $server 2>/dev/null; do awk '/VmRSS/ { print $2 }' /proc/$server/status; sleep 0.2; done ) >"$work/rss.txt" &
sampler=$!
before=$(awk '/VmRSS/ { print $2 }' /proc/$server/status)
t0=$(now_s)
bytes=$(curl -s -X POST --data-binary "SELECT * FROM events" "http://127.0.0.1:18080/api/sql?format=csv" | wc -c)
elapsed=$(echo "$(now_s) - $t0" | bc)
kill $sampler 2>/dev/null || true
rss_peak=$(sort -n "$work/rss.txt" | tail -1)
echo "full download: every event as CSV, $((bytes / 1000000)) MB in ${elapsed} s; server memory ${before} kB before, peak ${rss_peak} kB"
