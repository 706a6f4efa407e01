#!/usr/bin/env bash
# Benchmark of `chiso ingest`: the generator's event log at SCALE (CSV) into an
# empty store, then again (every event a duplicate), against DuckDB reading the
# same CSV and writing Parquet, on the same machine in the same run.
# Reports wall seconds, events per second and peak resident memory.
#
#   benches/ingest.sh [SCALE] [WORK_DIR]
set -euo pipefail
scale="${1:-1}"
work="${2:-${TMPDIR:-/tmp}/chiso-bench-ingest}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
bin="$CARGO_TARGET_DIR/release/chiso"

venv="$CARGO_TARGET_DIR/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb
fi

mkdir -p "$work"
csv="$work/events-$scale.csv"
[ -f "$csv" ] || "$bin" gen --scale "$scale" --out "$csv" >/dev/null
events=$(($(wc -l <"$csv") - 1))
rm -rf "$work/store" "$work/duckdb.parquet"

measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >"$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
  read -r seconds kilobytes <"$work/time.txt"
  printf '%-34s %9s %12s %9s\n' "$label" "$seconds" "$(awk -v e="$events" -v s="$seconds" 'BEGIN { printf "%d", e / s }')" "$((kilobytes / 1024))"
}

echo "ingest of $events events ($(du -m "$csv" | cut -f1) MB CSV, scale $scale) on $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-34s %9s %12s %9s\n' run seconds events/s peak_MB
measure "chiso ingest (empty store)" "$bin" ingest --store "$work/store" "$csv"
measure "chiso ingest (again: duplicates)" "$bin" ingest --store "$work/store" "$csv"
measure "duckdb read_csv -> parquet" "$venv/bin/python" -c "
import duckdb
duckdb.sql(\"COPY (SELECT * FROM read_csv('$csv')) TO '$work/duckdb.parquet' (FORMAT parquet)\")
"
echo
"$bin" store info --store "$work/store" | head -5
