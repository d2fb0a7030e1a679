#!/bin/sh
# Is the pretrained default backbone worth using? On every embedded downstream task: full
# fine-tuning from it vs from random initialisation (same architecture, same recipe), and a
# linear probe on it vs chance. Writes the table to models/README.md and data/README.md.
# usage: tools/pretrain_check.sh [DATA=data] [CKPT=models/vit-micro-fractal.safetensors] [EPOCHS=10]
set -e
DATA=${DATA:-data}
CKPT=${CKPT:-models/vit-micro-fractal.safetensors}
EPOCHS=${EPOCHS:-10}
OUT=${OUT:-results/pretrain-check}
mkdir -p "$OUT"
TASKS="fashion_mnist textures dsprites_loc dsprites_ori clevr_count clevr_dist smallnorb_azi smallnorb_ele"
for t in $TASKS; do
  for cfg in "pre full $CKPT 3e-4" "rand full vit-micro 1e-3" "pre linear $CKPT 1e-2"; do
    set -- $cfg
    rec="$OUT/$1-$2-$t.json"
    [ -f "$rec" ] && continue
    echo "pretrain check: $t $1 $2" >&2
    ./petl run --backbone "$3" --method "$2" --data "$DATA" --task "$t" --epochs "$EPOCHS" --lr "$4" \
      --batch 64 --out "$rec" >&2
  done
done
acc() { sed -n 's/^[[:space:]]*"accuracy":[[:space:]]*\([0-9.e-]*\),*$/\1/p' "$1" | head -1; }
cls() { sed -n 's/^[[:space:]]*"classes":[[:space:]]*\([0-9]*\),*$/\1/p' "$1" | head -1; }
table=$(mktemp)
{
  echo "## Is the pretrained backbone worth using?"
  echo
  echo "Made by \`tools/pretrain_check.sh\` (EPOCHS=$EPOCHS) with \`$CKPT\`: test accuracy (%) after"
  echo "training on train800val200 with the same recipe (AdamW, batch 64, $EPOCHS epochs; lr 3e-4"
  echo "from the pretrained weights, 1e-3 from random init, 1e-2 for the probe)."
  echo
  echo "| task | classes | chance | full FT, pretrained | full FT, random init | linear probe, pretrained |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for t in $TASKS; do
    a=$(acc "$OUT/pre-full-$t.json"); b=$(acc "$OUT/rand-full-$t.json"); c=$(acc "$OUT/pre-linear-$t.json")
    k=$(cls "$OUT/pre-full-$t.json")
    awk -v t="$t" -v k="$k" -v a="$a" -v b="$b" -v c="$c" \
      'BEGIN { printf "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", t, k, 100 / k, 100 * a, 100 * b, 100 * c }'
  done
} > "$table"
for f in models/README.md "$DATA/README.md"; do
  [ -f "$f" ] || continue
  awk '/^## Is the pretrained backbone worth using\?/ { skip = 1 } skip && /^## / && !/worth using/ { skip = 0 } !skip' \
    "$f" > "$f.tmp" && cat "$table" >> "$f.tmp" && mv "$f.tmp" "$f"
done
cat "$table"
rm -f "$table"
