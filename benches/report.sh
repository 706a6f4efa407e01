#!/usr/bin/env bash
# The review packs on the generator's city at SCALE: the city pack of one
# week as PDF, XLSX and HTML (each a new `chiso report` process: opening the
# store, computing every panel, writing), one ward's pack, and every pack of
# the week (the city and 103 wards, PDF and XLSX, as the Monday schedule
# writes them). Reports wall seconds and peak memory.
#
#   benches/report.sh [SCALE] [WORK_DIR] [WEEK]
#
# The store is the one benches/kpi.sh prepares (generated and ingested once).
set -euo pipefail
scale="${1:-1}"
work="${2:-${TMPDIR:-/tmp}/chiso-bench-kpi-$scale}"
week="${3:-2025-W40}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
bin="$CARGO_TARGET_DIR/release/chiso"
store="$work/store"
if [ ! -d "$store" ]; then
  mkdir -p "$work"
  "$bin" gen --scale "$scale" --out "$work/events.parquet" >/dev/null
  "$bin" ingest --store "$store" "$work/events.parquet" >/dev/null
fi
# The first query of a version derives the dossier tables: not a report's cost.
"$bin" sql --store "$store" "SELECT count(*) FROM dossier_facts" >/dev/null 2>&1

out="$work/reports"
rm -rf "$out"
mkdir -p "$out"
run() { # label command... -> label, seconds, peak MB
  /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt" || { cat "$work/err.txt"; exit 1; }
  read -r seconds kb <"$work/time.txt"
  printf '%-34s %9s %9s\n' "$label" "$seconds" "$((kb / 1024))"
}
echo "Report packs, scale $scale, week $week, on $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-34s %9s %9s\n' what seconds peak_MB
for format in pdf xlsx html; do
  label="city pack, $format"
  run "$bin" report weekly --store "$store" --week "$week" --format "$format" --out "$out/city.$format"
done
label="ward pack (31135), pdf"
run "$bin" report weekly --store "$store" --week "$week" --ward 31135 --format pdf --out "$out/ward.pdf"
label="all 104 packs, pdf + xlsx"
run "$bin" report weekly --store "$store" --week "$week" --all --out-dir "$out/all"
echo "files: $(find "$out/all" -type f | wc -l), $(du -sh "$out/all" | cut -f1); city PDF $(pdfinfo "$out/city.pdf" 2>/dev/null | awk '/^Pages/ { print $2 }') pages"
