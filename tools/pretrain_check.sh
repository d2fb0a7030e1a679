#!/bin/sh
# Is the pretrained default backbone worth using? Puts side by side, per embedded task, from the
# records of `make bench` (results/default: full fine-tuning and linear probe of the pretrained
# backbone) and of the control matrix (results/control: full fine-tuning of the same
# architecture from random initialisation, same budget): test accuracy, and chance.
# Writes the table into models/README.md and data/README.md (replacing an earlier one).
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
    k=$(wc -l < "data/$t/classes.txt" 2>/dev/null || echo 0)
    a=$(find_acc "$R/default" full "$t"); b=$(find_acc "$R/control" full "$t"); c=$(find_acc "$R/default" linear "$t")
    awk -v t="$t" -v k="$k" -v a="$a" -v b="$b" -v c="$c" 'function p(x) { return x == "-" ? "-" : sprintf("%.1f", 100 * x) }
      BEGIN { printf "| %s | %s | %s | %s | %s |\n", t, ((k > 0) ? sprintf("%.1f", 100 / k) : "-"), p(a), p(b), p(c) }'
  done
} > "$table"
for f in models/README.md data/README.md; do
  [ -f "$f" ] || continue
  awk '/^## Is the pretrained backbone worth using\?/ { skip = 1; next } skip && /^## / { skip = 0 } !skip' "$f" | cat -s > "$f.tmp"
  { cat "$f.tmp"; echo; cat "$table"; } > "$f" && rm -f "$f.tmp"
done
cat "$table"
rm -f "$table"
