#!/usr/bin/env bash
# Load benchmark of `chiso serve` on loopback with wrk (Debian `wrk`):
# requests per second and p50/p99 latency for the overview page, the ranking
# page and a PNG chart at 1, 10 and 50 concurrent connections, warm cache;
# then the cost of an ingest: the POST (which answers once the new figures are
# served, the default pages computed) and the first pages after it.
#
#   benches/serve.sh [STORE] [SECONDS]
#
# STORE defaults to the built-in sample city; benches/kpi.sh 1 leaves a
# scale-1 store in /tmp/chiso-bench-kpi-1/store. Server and wrk share the
# machine's two cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
store="${1:-}"
seconds="${2:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
bin="$CARGO_TARGET_DIR/release/chiso"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }

port=18080
token="bench-token-$$"
args=(serve --addr "127.0.0.1:$port" --ingest-token "$token" --dashboards "$root/dashboards")
[ -n "$store" ] && args+=(--store "$store")
log="$(mktemp)"
"$bin" "${args[@]}" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.5
done
base="http://127.0.0.1:$port"
period="2025-W40"
urls=("/?period=$period" "/ranking?period=$period" "/chart/overview/trend.png?period=$period")
names=("overview page" "ranking page" "PNG chart")

first() { curl -s -o /dev/null -w '%{time_total}' "$base$1"; }
echo "# chiso serve, $(date -u +%F), store: ${store:-built-in sample city}"
echo
echo "| request | first (cold cache) s |"
echo "|---|---|"
for i in "${!urls[@]}"; do
  echo "| ${names[$i]} | $(first "${urls[$i]}") |"
done
echo
echo "| request | connections | requests/s | p50 | p99 |"
echo "|---|---|---|---|---|"
for i in "${!urls[@]}"; do
  for c in 1 10 50; do
    threads=$(( c < 2 ? 1 : 2 ))
    out="$(wrk -t"$threads" -c"$c" -d"${seconds}s" --latency "$base${urls[$i]}")"
    rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    echo "| ${names[$i]} | $c | $rps | $p50 | $p99 |"
  done
done

# An ingest of 100 new dossiers in week 40, then the first page after it.
events="$(mktemp)"
for i in $(seq 1 100); do
  printf '{"event_id":"bench-%s-%s","dossier_id":"BENCH-%s-%s","event_type":"received","occurred_at":"2025-10-01T09:00:00+07:00","ward_code":"31135","procedure_code":"2.000815","channel":"online"}\n' "$$" "$i" "$$" "$i"
done >"$events"
post="$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/x-ndjson' --data-binary @"$events" "$base/api/events")"
after_default="$(first "/")"
after_other="$(first "/?period=$period")"
rm -f "$events"
echo
echo "| after an ingest of 100 events | seconds |"
echo "|---|---|"
echo "| POST /api/events (answers when the new figures are served) | $post |"
echo "| first overview page after it, default period (prepared before the version is served) | $after_default |"
echo "| first overview page after it, another period ($period) | $after_other |"
