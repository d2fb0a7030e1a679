#!/bin/sh
# Puts the results of `make bench` into the README: results/default/table.md (image tables, then
# the vision-language table) between the markers <!-- results:begin --> and <!-- results:end -->,
# and copies of the parameter plots as docs/acc_vs_params.png and docs/vl_score_vs_params.png
# (and .svg). Run after `make bench`.
set -e
T=results/default/table.md
[ -f "$T" ] || { echo "tools/readme_results.sh: $T is missing: run make bench first" >&2; exit 1; }
mkdir -p docs
for p in acc_vs_params vl_score_vs_params; do
  [ -f "plots/default/$p.png" ] || continue
  cp "plots/default/$p.png" "docs/$p.png"
  cp "plots/default/$p.svg" "docs/$p.svg" 2>/dev/null || true
done
awk -v table="$T" '
  /<!-- results:begin -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
  /<!-- results:end -->/ { skip = 0 }
  !skip' README.md > README.md.tmp && mv README.md.tmp README.md
echo "README.md and docs/*_vs_params.png updated from $T"
