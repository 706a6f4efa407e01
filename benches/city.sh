# Sourced by benches/kpi.sh and benches/live.sh: the release binary ($bin),
# the Python with DuckDB and Polars ($venv), and the generator's city at
# $scale generated and ingested once into $work/store ($store, from
# $events).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chiso/target}"
cargo build --release --manifest-path "$root/Cargo.toml" -p chiso >/dev/null
bin="$CARGO_TARGET_DIR/release/chiso"

venv="$CARGO_TARGET_DIR/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb, polars' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb polars
fi

mkdir -p "$work"
events="$work/events.parquet"
store="$work/store"
if [ ! -d "$store" ]; then
  [ -f "$events" ] || "$bin" gen --scale "$scale" --out "$events" >/dev/null
  "$bin" ingest --store "$store" "$events" >/dev/null
fi
