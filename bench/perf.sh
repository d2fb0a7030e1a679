#!/bin/sh
# make perf: each configuration in its own process (so peak RSS is its own), medians of steps.
# Compare with the PyTorch peer run back to back: /usr/bin/python3 ../shared/peer/bench_peer.py --modes tuned
B=${1:-build}
P=$B/perf/perf_vit
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "petl perf: OMP_NUM_THREADS=$OMP_NUM_THREADS, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
peak=$($P sgemm | tee /dev/stderr | awk '{print $3}')
for m in full linear infer; do
  $P $m 10 "$peak"
done
[ -x $B/perf/perf_methods ] && $B/perf/perf_methods "$peak"
exit 0
