#!/bin/sh
# Is the pretrained default backbone worth using? Puts side by side, per embedded task, from the
# records of `make bench` (results/default: full fine-tuning and linear probe of the pretrained
# backbone) and of the control matrix (results/control: full fine-tuning of the same
# architecture from random initialisation, same budget): test accuracy, and chance.
# Writes the table to $RESULTS/default/pretrain_check.md (generated files never share a path with
# committed documentation: models/README.md quotes a run of it, copied by hand).
# usage: tools/pretrain_check.sh [RESULTS=results]
R=${RESULTS:-results}
field() { sed -n "s/^[[:space:]]*\"$2\":[[:space:]]*\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1; }
find_acc() {   # $1 folder, $2 method, $3 task -> accuracy of the first ok record
  for f in "$1"/cells/*.json; do
    [ -f "$f" ] || continue
    [ "$(field "$f" status)" = ok ] || continue
    [ "$(field "$f" method)" = "$2" ] && [ "$(field "$f" task)" = "$3" ] && [ "$(field "$f" regime)" = full ] && {
      field "$f" accuracy; return; }
  done
  echo -
}
table=$(mktemp)
{
  echo "## Is the pretrained backbone worth using?"
  echo
  echo "Made by \`tools/pretrain_check.sh\` from the records of \`make bench\` (\`$R/default\`) and of"
  echo "\`bench/matrices/control.json\` (\`$R/control\`): test accuracy (%), same training budget."
  echo
  echo "| task | chance | full FT, pretrained | full FT, random init | linear probe, pretrained |"
  echo "| --- | --- | --- | --- | --- |"
  for t in fashion_mnist textures dsprites_loc clevr_count clevr_dist; do
    k=$(wc -l 2>/dev/null < "data/$t/classes.txt" || echo 0)
    a=$(find_acc "$R/default" full "$t"); b=$(find_acc "$R/control" full "$t"); c=$(find_acc "$R/default" linear "$t")
    awk -v t="$t" -v k="$k" -v a="$a" -v b="$b" -v c="$c" 'function p(x) { return x == "-" ? "-" : sprintf("%.1f", 100 * x) }
      BEGIN { printf "| %s | %s | %s | %s | %s |\n", t, ((k > 0) ? sprintf("%.1f", 100 / k) : "-"), p(a), p(b), p(c) }'
  done
} > "$table"
mkdir -p "$R/default"
cp "$table" "$R/default/pretrain_check.md"
cat "$table"
rm -f "$table"
