#!/bin/sh
# make bench (default) / make bench-quick (quick): the embedded benchmark end to end.
#   data  -> data/ (generated once, reused), pretrained backbones -> models/ (the ViT, and the
#   VL model when the matrix has a "vl" block; committed, made again only when missing),
#   matrix -> results/NAME/ (one record per cell; an interrupted run resumes), then the table
#   results/NAME/table.md and the plots plots/NAME/.
set -e
NAME=${1:-default}
MATRIX=bench/matrices/$NAME.json
CKPT=models/vit-micro-fractal.safetensors
VLCKPT=models/vl-tiny.safetensors
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
start=$(date +%s)
echo "== petl bench $NAME: data"
./petl data make --out data
if [ ! -f "$CKPT" ]; then
  echo "== petl bench $NAME: pretraining the default backbone (missing $CKPT; about 15-25 minutes)"
  mkdir -p models
  ./petl pretrain --preset vit-micro --data data --task fractal --out "$CKPT"
fi
if grep -q '"vl"' "$MATRIX" && [ ! -f "$VLCKPT" ]; then
  echo "== petl bench $NAME: pretraining the default VL backbone (missing $VLCKPT; about 10-15 minutes)"
  ./petl pretrain --preset vl-tiny --data data/vl --image-encoder "$CKPT" --out "$VLCKPT"
fi
echo "== petl bench $NAME: matrix $MATRIX"
# cells run as separate processes, one per core with one thread each: the small GEMMs of these
# models scale poorly to 2 threads, two cells side by side finish about twice as fast
rc=0
./petl bench "$MATRIX" --out "results/$NAME" --jobs "$(nproc)" --threads 1 ${PETL_BENCH_ARGS:-} || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || exit $rc   # 3: some cells failed (listed above); still tabulate
if [ "$NAME" = default ]; then
  echo "== petl bench $NAME: control (random-init full fine-tuning, bench/matrices/control.json)"
  ./petl bench bench/matrices/control.json --out results/control --jobs "$(nproc)" --threads 1 || [ $? -eq 3 ]
  ./tools/pretrain_check.sh
fi
echo "== petl bench $NAME: table and plots"
./petl table "results/$NAME" --out "results/$NAME/table.md"
./petl table "results/$NAME" --format csv --out "results/$NAME/table.csv"
./petl table "results/$NAME" --format csv --regime fewshot --out "results/$NAME/fewshot.csv"
if grep -q '"vl"' "$MATRIX"; then
  ./petl table "results/$NAME" --format csv --regime vl --out "results/$NAME/vl.csv"
fi
./petl plot "results/$NAME" --out "plots/$NAME" --published
cat "results/$NAME/table.md"
echo "== petl bench $NAME: done in $(( $(date +%s) - start )) s: results/$NAME/table.md, plots/$NAME/"
exit $rc
