#!/usr/bin/env bash
# What a reader's scope costs (issue 30): the KPI queries of kpi.sh (b: one
# month by ward, c: the index of a month, d: an ad-hoc count on events),
# warm, as the whole engine reads them and as the officers of one ward
# (31135, `chiso sql --as-ward`) read them: the same SQL text, whose tables
# are the scope's views. And the cold start of each (making the scoped
# catalogue is part of the second).
#
#   benches/scope.sh [SCALE] [WORK_DIR]
set -euo pipefail
scale="${1:-1}"
work="${2:-${TMPDIR:-/tmp}/chiso-bench-kpi-$scale}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
bin="$CARGO_TARGET_DIR/release/chiso"

mkdir -p "$work"
events="$work/events.parquet"
store="$work/store"
if [ ! -d "$store" ]; then
  [ -f "$events" ] || "$bin" gen --scale "$scale" --out "$events" >/dev/null
  "$bin" ingest --store "$store" "$events" >/dev/null
fi
# Derived once, outside the timings.
"$bin" sql --store "$store" "SELECT count(*) FROM dossier_facts" >/dev/null 2>&1

"$bin" kpi --store "$store" --period 2025-07 --by ward --show-sql >"$work/b.sql"
"$bin" index --store "$store" --period 2025-07 --show-sql >"$work/c.sql"
echo "SELECT occurred_month, channel, count(*) AS received FROM events WHERE event_type = 'received' GROUP BY 1, 2 ORDER BY 1, 2" >"$work/d.sql"

warm() { # the best of runs 2-6 of a query in one process: warm SQL [ARGS...]
  local sql="$1"; shift
  for _ in 1 2 3 4 5 6; do printf '%s;\n' "$sql"; done |
    "$bin" sql --store "$store" --timing "$@" 2>&1 >/dev/null |
    awk '/^time:/ { n++; if (n > 1 && (best == "" || $2 < best)) best = $2 } END { print best }'
}
cold() { # wall seconds of one process
  /usr/bin/time -f '%e' "$bin" sql --store "$store" "$@" 2>&1 >/dev/null | tail -1
}

echo "Scope, scale $scale, on $(nproc) cores, $(date -u +%F)"
printf '%-26s %10s %10s %8s\n' query whole ward_31135 ratio
for q in b c d; do
  sql="$(cat "$work/$q.sql")"
  whole=$(warm "$sql")
  ward=$(warm "$sql" --as-ward 31135)
  printf '%-26s %10s %10s %8s\n' "$q warm" "$whole" "$ward" \
    "$(awk -v w="$whole" -v s="$ward" 'BEGIN { if (w > 0) printf "%.2f", s / w; else print "-" }')"
done
whole=$(cold "SELECT 1")
ward=$(cold --as-ward 31135 "SELECT 1")
printf '%-26s %10s %10s %8s\n' "start (SELECT 1, cold)" "$whole" "$ward" \
  "$(awk -v w="$whole" -v s="$ward" 'BEGIN { if (w > 0) printf "%.2f", s / w; else print "-" }')"
echo "(ratio = as the ward / as the whole engine; the ward's queries read its dossiers only)"
