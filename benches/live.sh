#!/usr/bin/env bash
# Live figures (issue 31): how soon an ingest is visible, and what readers
# feel meanwhile, on the generator's city at SCALE, with DuckDB's full
# re-derivation of the same store as the reference (the cost every ingest
# paid before updates):
#
#   benches/live.sh [SCALE] [SECONDS] [READERS] [WORK_DIR]
#
# The store is the one benches/kpi.sh SCALE makes (generated and ingested
# here if absent). Needs wrk (Debian `wrk`); server, wrk and the client
# share the machine's two cores. Prints Markdown (benches/live.py).
set -euo pipefail
scale="${1:-1}"
seconds="${2:-300}"
readers="${3:-50}"
work="${4:-${TMPDIR:-/tmp}/chiso-bench-kpi-$scale}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
. "$(dirname "$0")/city.sh"
# Each run starts from a copy of the ingested city, so that runs compare:
# the batches of a run stay in its copy.
live_store="$work/live-store"
rm -rf "$live_store"
cp -r "$store" "$live_store"
rm -rf "$live_store/derived"
# A full derivation to start from, as a served store has.
full=$( { /usr/bin/time -f '%e' "$bin" store rederive --store "$live_store" >/dev/null; } 2>&1 | tail -1)
duckdb=$(WORK="$work" STORE="$live_store" DERIVED="$work/duckdb-derived" QUERIES="$root/queries" \
  "$venv/bin/python" "$root/benches/kpi_duckdb.py" derive)

port=18081
token="bench-token-$$"
log="$work/live-server.log"
"$bin" serve --store "$live_store" --addr "127.0.0.1:$port" --ingest-token "$token" \
  --dashboards "$root/dashboards" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/" >/dev/null
# Measured once the server has read the index of stored events, as a
# server that has been running a while has.
for _ in $(seq 1 600); do
  grep -q "read the index of stored events" "$log" && break
  sleep 0.5
done

echo "# Live figures, $(date -u +%F), scale $scale, $(nproc) cores"
echo
echo "Full derivation of the store: chiso $full s, DuckDB $duckdb s (the same SQL)."
echo
python3 "$root/benches/live.py" "http://127.0.0.1:$port" "$token" "$seconds" "$readers"
echo
echo "Server peak memory: $(ps -o rss= -p $server | awk '{printf "%d MB (now)", $1/1024}')"
