#!/bin/sh
# Puts the results of `make bench` into the README: results/default/table.md between the
# markers <!-- results:begin --> and <!-- results:end -->, and a copy of the parameters plot as
# docs/acc_vs_params.png (and .svg). Run after `make bench`.
set -e
T=results/default/table.md
[ -f "$T" ] || { echo "tools/readme_results.sh: $T is missing: run make bench first" >&2; exit 1; }
mkdir -p docs
cp plots/default/acc_vs_params.png docs/acc_vs_params.png
cp plots/default/acc_vs_params.svg docs/acc_vs_params.svg 2>/dev/null || true
awk -v table="$T" '
  /<!-- results:begin -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
  /<!-- results:end -->/ { skip = 0 }
  !skip' README.md > README.md.tmp && mv README.md.tmp README.md
echo "README.md and docs/acc_vs_params.png updated from $T"
