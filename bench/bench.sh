#!/bin/sh
# make bench (default) / make bench-quick (quick): the embedded benchmark end to end.
#   data  -> data/ (generated once, reused), pretrained backbone -> models/ (made once, reused),
#   matrix -> results/NAME/ (one record per cell; an interrupted run resumes), then the table
#   results/NAME/table.md and the plots plots/NAME/.
set -e
NAME=${1:-default}
MATRIX=bench/matrices/$NAME.json
CKPT=models/vit-micro-fractal.safetensors
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
start=$(date +%s)
echo "== petl bench $NAME: data"
./petl data make --out data
if [ ! -f "$CKPT" ]; then
  echo "== petl bench $NAME: pretraining the default backbone (missing $CKPT; about 15 minutes)"
  mkdir -p models
  ./petl pretrain --preset vit-micro --data data --task fractal --out "$CKPT"
fi
echo "== petl bench $NAME: matrix $MATRIX"
./petl bench "$MATRIX" --out "results/$NAME" ${PETL_BENCH_ARGS:-}
echo "== petl bench $NAME: table and plots"
./petl table "results/$NAME" --format md > "results/$NAME/table.md.tmp" && mv "results/$NAME/table.md.tmp" "results/$NAME/table.md"
./petl table "results/$NAME" --format csv > "results/$NAME/table.csv.tmp" && mv "results/$NAME/table.csv.tmp" "results/$NAME/table.csv"
./petl plot "results/$NAME" --out "plots/$NAME" --published
cat "results/$NAME/table.md"
echo "== petl bench $NAME: done in $(( $(date +%s) - start )) s: results/$NAME/table.md, plots/$NAME/"
