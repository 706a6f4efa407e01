#!/usr/bin/env bash
# Due soon and alerts (issue 36): what a due-soon list and a round of alert
# rules cost on the generator's city at SCALE, next to one week's KPIs by
# ward (what a page already pays):
#
#   benches/due_soon.sh [SCALE] [AT] [WORK_DIR]
#
# The store is the one benches/kpi.sh SCALE makes (generated and ingested
# here if absent). Prints each query's best of three, and the wall time and
# peak memory of `chiso alerts test` over dashboards/alerts.example.toml.
set -euo pipefail
scale="${1:-1}"
at="${2:-2025-12-29T08:00:00+07:00}"
work="${3:-${TMPDIR:-/tmp}/chiso-bench-kpi-$scale}"
. "$(dirname "$0")/city.sh"
"$bin" sql --store "$store" "SELECT 1" >/dev/null  # derive once, if needed
best() {
  for _ in 1 2 3; do
    "$bin" sql --store "$store" --timing "$1" 2>&1 >/dev/null | sed -n 's/^time: \(.*\) s$/\1/p'
  done | sort -n | head -1
}
echo "# Due soon, $(date -u +%F), scale $scale, $(nproc) cores, at $at"
echo
echo "| query | best of 3, s |"
echo "|---|---|"
for query in \
  "SELECT count(*) FROM kpi('2025-W52', 'ward')" \
  "SELECT count(*), sum(working_hours_left) FROM due_soon('$at', 2)" \
  "SELECT ward_code, count(*) FROM due_soon('$at', 2) GROUP BY ward_code" \
  "SELECT * FROM due_soon('$at', 2, '31135')"; do
  echo "| \`$query\` | $(best "$query") |"
done
echo
/usr/bin/time -f '%e s, %M KB peak' "$bin" alerts test --store "$store" \
  --alerts "$root/dashboards/alerts.example.toml" --at "$at" 2>&1 >/dev/null | tail -2
