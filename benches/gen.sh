#!/usr/bin/env bash
# Benchmark of `chiso gen`: wall time and peak memory of the sample city at a
# given scale, in every output format. Run by hand; results go in README.md.
#
#   benches/gen.sh [SCALE] [OUT_DIR]
set -euo pipefail
scale="${1:-1}"
out="${2:-${TMPDIR:-/tmp}/chiso-bench-gen}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
bin="$CARGO_TARGET_DIR/release/chiso"
mkdir -p "$out"
echo "chiso gen --scale $scale on $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-8s %10s %10s %12s %10s\n' format seconds peak_MB rows size_MB
for format in csv ndjson parquet; do
  file="$out/events-$scale.$format"
  /usr/bin/time -f '%e %M' -o "$out/time.txt" "$bin" gen --scale "$scale" --out "$file" >"$out/summary.txt"
  read -r seconds kilobytes <"$out/time.txt"
  rows=$(grep -oE '[0-9,]+ rows' "$out/summary.txt" | head -1 | tr -d ', rows')
  size=$(du -m "$file" | cut -f1)
  printf '%-8s %10s %10s %12s %10s\n' "$format" "$seconds" "$((kilobytes / 1024))" "$rows" "$size"
  rm -f "$file"
done
