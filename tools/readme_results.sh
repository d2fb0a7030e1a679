#!/bin/sh
# Puts the results of `make bench` into the README: results/default/table.md between the
# markers <!-- results:begin --> and <!-- results:end -->, and a copy of the parameters plot as
# docs/acc_vs_params.png (and .svg). Run after `make bench`. Vision-language records in
# results/default appear in table.md by themselves (petl table prints their tables after the
# image tables); those of a separate folder (VL_RESULTS, default results/vl, when it exists) are
# appended as `petl table --regime vl` gives them.
set -e
T=results/default/table.md
VL=${VL_RESULTS:-results/vl}
[ -f "$T" ] || { echo "tools/readme_results.sh: $T is missing: run make bench first" >&2; exit 1; }
mkdir -p docs
cp plots/default/acc_vs_params.png docs/acc_vs_params.png
cp plots/default/acc_vs_params.svg docs/acc_vs_params.svg 2>/dev/null || true
ALL=$T
if [ -d "$VL" ]; then
  ALL=$(mktemp)
  trap 'rm -f "$ALL"' EXIT
  cp "$T" "$ALL"
  ./petl table "$VL" --regime vl | sed 1d >> "$ALL"   # without its "# petl results" title
fi
awk -v table="$ALL" '
  /<!-- results:begin -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
  /<!-- results:end -->/ { skip = 0 }
  !skip' README.md > README.md.tmp && mv README.md.tmp README.md
echo "README.md and docs/acc_vs_params.png updated from $T${VL:+$( [ -d "$VL" ] && echo " and $VL")}"
