#!/usr/bin/env bash
# What the gate costs a small query: the per-statement work every entry
# point now does (read-only check, admission, a memory pool of its own with
# the capped functions, the deadline's timer, the Postgres place check) on
# queries whose own work is tiny, where that cost would show most.
#
#   a  HTTP: GET /api/sql?q=SELECT count(*) FROM wards, wrk, 1 and 4 connections
#      (4: the queries allowed at once; more would be answered 503)
#   b  Postgres: 1000 statements `SELECT count(*) FROM wards` in one psql session
#   c  Postgres: 200 cursors declared, fetched in pages of 10 and closed
#
# on the built-in sample city (or STORE). Server and clients share the cores.
#
#   benches/gate.sh [STORE] [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
store="${1:-}"
seconds="${2:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
bin="${CHISO_BIN:-$CARGO_TARGET_DIR/release/chiso}"
[ -x "$bin" ] || cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v psql >/dev/null || { echo "needs psql (apt-get install postgresql-client)" >&2; exit 1; }

work="$(mktemp -d)"
port=18090
pg=15490
printf 'bench-password\n' | "$bin" pg-user add --users "$work/users" bench --password-stdin >/dev/null 2>&1
args=(serve --addr "127.0.0.1:$port" --pg-addr "127.0.0.1:$pg" --pg-users "$work/users")
[ -n "$store" ] && args+=(--store "$store")
"$bin" "${args[@]}" 2>"$work/log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.5
done

echo "# the gate on small queries, $(date -u +%F), $("$bin" --version)"
echo
echo "| what | connections | requests/s | p50 | p99 | refused (non-2xx) |"
echo "|---|---|---|---|---|---|"
url="http://127.0.0.1:$port/api/sql?q=SELECT+count(*)+FROM+wards"
for c in 1 4; do
  threads=$(( c < 2 ? 1 : 2 ))
  out="$(wrk -t"$threads" -c"$c" -d"${seconds}s" --latency "$url")"
  refused="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  echo "| a HTTP /api/sql | $c | $(awk '/^Requests\/sec/ {print $2}' <<<"$out") | $(awk '$1 == "50%" {print $2}' <<<"$out") | $(awk '$1 == "99%" {print $2}' <<<"$out") | ${refused:-0} |"
done

psql_run() {
  PGPASSWORD=bench-password psql -h 127.0.0.1 -p "$pg" -U bench -d chiso -X -q -A -t -f "$1" >/dev/null
}
for _ in $(seq 1 1000); do echo "SELECT count(*) FROM wards;"; done >"$work/b.sql"
for i in $(seq 1 200); do
  echo "DECLARE c$i CURSOR FOR SELECT ward_code FROM wards;"
  for _ in $(seq 1 11); do echo "FETCH 10 FROM c$i;"; done
  echo "CLOSE c$i;"
done >"$work/c.sql"
best() { sort -n | head -1; }
timed() { local s e; s=$(date +%s.%N); psql_run "$1"; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
psql_run "$work/b.sql" # warm
b=$(for _ in 1 2 3; do timed "$work/b.sql"; done | best)
c=$(for _ in 1 2 3; do timed "$work/c.sql"; done | best)
echo
echo "| what | statements | seconds (best of 3) | per statement |"
echo "|---|---|---|---|"
printf '| b psql, one session | 1000 | %.3f | %.3f ms |\n' "$b" "$(echo "$b" | awk '{print $1}')"
printf '| c psql cursors, one session | %d | %.3f | %.3f ms |\n' 2600 "$c" "$(echo "$c / 2.6" | bc -l)"
