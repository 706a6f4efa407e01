#!/usr/bin/env bash
# The reference look of the review packs: the first three pages of the city
# pack and the first two of a ward's, as PNG, from the built-in sample city
# (week 2025-W40; Ninh Kiều, September 2025). Run it after changing the
# dashboards, the packs or the PDF layout, and look at what changed:
#
#   docs/pack-pages/regenerate.sh            # builds and runs chiso (release)
#   CHISO=target/debug/chiso docs/pack-pages/regenerate.sh
#
# Needs pdftoppm (Debian's poppler-utils).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
if [ -n "${CHISO:-}" ]; then
    chiso=("$CHISO")
else
    chiso=(cargo run --release --quiet --)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A sample city of its own, so that the pages never depend on a user's data.
export XDG_DATA_HOME="$work/data"
unset CHISO_STORE
"${chiso[@]}" report weekly --week 2025-W40 --out "$work/city.pdf"
"${chiso[@]}" report monthly --month 2025-09 --ward 31135 --out "$work/ward.pdf"
rm -f "$here"/*.png
pdftoppm -r 60 -png -f 1 -l 3 "$work/city.pdf" "$here/city-2025-W40"
pdftoppm -r 60 -png -f 1 -l 2 "$work/ward.pdf" "$here/ward-31135-2025-09"
ls -1 "$here"/*.png
