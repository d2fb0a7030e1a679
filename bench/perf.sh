#!/bin/sh
# make perf: ViT-Tiny (dim 192, depth 12, heads 3), 32 px, patch 4, batch 64 — the PyTorch peer's
# configuration (shared/peer/README.md). Each configuration runs in its own process so its peak
# RSS is its own; times are medians over steps. The peer's figures below are the ones measured
# on this kind of machine (tuned mode); for ratios you can cite, run the peer back to back:
#   /usr/bin/python3 ../shared/peer/bench_peer.py --modes tuned --repeats 3 --out /tmp/peer.json
B=${1:-build}
P=$B/perf/perf_vit
STEPS=${PERF_STEPS:-10}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "petl perf: OMP_NUM_THREADS=$OMP_NUM_THREADS,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
peak=$($P sgemm | tee /dev/stderr | awk '{print $3}')
tmp=$(mktemp)
for m in full linear bitfit lora adapter ssf adaptformer convpass compacter fact_tt fact_tk kadaptation \
         lst sparse_adapter dsee l0mask prune int8 \
         vpt_shallow vpt_deep infer; do
  $P $m "$STEPS" "$peak" | tee -a "$tmp" | grep -v RESULT
done
echo
echo "| method | petl ms/step | petl images/s | peer images/s | ratio | petl peak RSS MB | peer peak RSS MB | RSS ratio | GFLOP/s | % of sgemm peak |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
# peer (shared/peer/README.md, tuned, medians of 3 fresh processes)
awk -v peak="$peak" '
BEGIN { pi["full"]=54.9; pr["full"]=1536; pi["linear"]=172.9; pr["linear"]=375; pi["bitfit"]=62.1; pr["bitfit"]=1322;
        pi["lora"]=71.7; pr["lora"]=1505; pi["adapter"]=64.3; pr["adapter"]=1401; pi["infer"]=166.6; pr["infer"]=346 }
/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
  m = r["mode"]; pe = (m in pi) ? sprintf("%.1f", pi[m]) : "-"; ra = (m in pi) ? sprintf("%.2fx", r["img_s"] / pi[m]) : "-";
  pre = (m in pr) ? pr[m] : "-"; rr = (m in pr) ? sprintf("%.2f", r["peak_rss_mb"] / pr[m]) : "-";
  printf "| %s | %.0f | %.1f | %s | %s | %.0f | %s | %s | %.1f | %.0f%% |\n", m, r["ms"], r["img_s"], pe, ra, r["peak_rss_mb"], pre, rr, r["gflops"], 100 * r["gflops"] / peak }' "$tmp"
rm -f "$tmp"
# LST memory against full, LoRA and the adapter (writes results/lst_memory.md)
./bench/lst_memory.sh "$B"
