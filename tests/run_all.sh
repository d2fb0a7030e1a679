#!/bin/sh
# Runs every test program; each prints its own "N passed, N failed". Sums them up at the end.
B=$1; shift
tp=0; tf=0; bad=""
for t in "$@"; do
  name=$(basename "$t")
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out" | sed "s/^/[$name] /"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  [ -z "$p" ] && p=0
  [ -z "$f" ] && f=0
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  [ $rc -ne 0 ] && bad="$bad $name(rc=$rc)"
  tp=$((tp + p)); tf=$((tf + f))
done
[ -n "$bad" ] && echo "failing programs:$bad"
echo "$tp passed, $tf failed"
[ $tf -eq 0 ]
