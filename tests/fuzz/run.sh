#!/bin/sh
# Builds and runs the libFuzzer targets of tests/fuzz/: every committed corpus file once (the
# regression inputs), then fuzzing for a while per target. Ends with "N passed, N failed" as the
# test programs do, so tests/run_all.sh counts it (`make test`); `make fuzz` runs it for longer.
#   tests/fuzz/run.sh [--seconds N] [--keep] [target ...]     (targets: img, npz, vl, ...)
#   no --seconds: the short run of `make test`, FUZZ_TEST_SECONDS (default 5) per target
#   --keep: inputs found gather in build-fuzz/corpus/<target> from run to run; otherwise in a
#           scratch folder removed at the end. The committed corpus is only read, never grown.
# A crash leaves its input in build-fuzz/crashes/<target>/ and prints the command that replays it.
cd "$(dirname "$0")/../.." || exit 1
secs=${FUZZ_TEST_SECONDS:-5}
# make test's short run starts from a fixed seed, so that a CI run is repeatable; make fuzz explores
seedopt="-seed=${FUZZ_SEED:-1}"
keep=0
targets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=$2; seedopt=""; shift 2 ;;
    --keep) keep=1; shift ;;
    -*) echo "fuzz: unknown option '$1' (expected --seconds N, --keep or target names)" >&2; exit 2 ;;
    *) targets="$targets $1"; shift ;;
  esac
done
case "$secs" in
  ''|*[!0-9]*) echo "fuzz: --seconds expects a whole number of seconds, got '$secs'" >&2; exit 2 ;;
esac
[ -z "$targets" ] && targets=$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')
for t in $targets; do
  [ -f "tests/fuzz/fuzz_$t.c" ] || {
    echo "fuzz: no target '$t' (expected one of: $(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||' | tr '\n' ' '))" >&2
    exit 2; }
done

cc=${FUZZ_CC:-clang}
rt=$("$cc" -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null)
if ! command -v "$cc" >/dev/null 2>&1 || [ ! -f "$rt" ]; then
  echo "fuzz: skipped: $cc with libFuzzer (libclang_rt.fuzzer-x86_64.a) not found; make deps installs clang"
  echo "0 passed, 0 failed"
  exit 0
fi

FZ=build-fuzz
start=$(date +%s)
pass=0; fail=0
mkdir -p $FZ
bins=""
for t in $targets; do bins="$bins $FZ/fuzz_$t"; done
# a plain make: this script may run under `make test`, whose job server is not ours
if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -j2 FUZZ_CC="$cc" $bins >$FZ/build.log 2>&1; then
  echo "build: ok ($(( $(date +%s) - start )) s)"
  pass=$((pass + 1))
else
  tail -n 30 $FZ/build.log
  echo "build: FAILED (full log: $FZ/build.log)"
  echo "0 passed, 1 failed"
  exit 1
fi

if [ $keep -eq 1 ]; then scratch=$FZ/corpus; rm -rf $FZ/tmp; work=$FZ/tmp
else scratch=$(mktemp -d "${TMPDIR:-/tmp}/petl-fuzz-run.XXXXXX") || exit 1; work=$scratch/tmp
fi
mkdir -p "$work"
# the targets write their inputs under TMPDIR; halt on the first UBSan report, with its stack
export TMPDIR="$work"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

for t in $targets; do
  bin=$FZ/fuzz_$t
  corpus=tests/fuzz/corpus/$t
  crashes=$FZ/crashes/$t
  log=$FZ/fuzz_$t.log
  mkdir -p "$crashes" "$scratch/$t"
  dict=""
  [ -f tests/fuzz/$t.dict ] && dict="-dict=tests/fuzz/$t.dict"

  # 1. regressions: every committed input once
  files=$(find "$corpus" -type f 2>/dev/null | sort)
  nfiles=$(printf '%s\n' "$files" | grep -c .)
  if [ "$nfiles" -eq 0 ]; then
    echo "fuzz_$t: FAILED: no seed inputs in $corpus"
    fail=$((fail + 1))
  elif "$bin" -timeout=10 $files >"$log" 2>&1; then
    echo "fuzz_$t: $nfiles corpus inputs replayed"
    pass=$((pass + 1))
  else
    tail -n 40 "$log"
    bad=$(grep '^Running: ' "$log" | tail -1 | sed 's/^Running: //')
    echo "fuzz_$t: FAILED on corpus input $bad"
    echo "  reproduce: $bin $bad"
    fail=$((fail + 1))
  fi

  # 2. fuzzing; new inputs go to the scratch folder (first), the committed corpus is read only
  if "$bin" $seedopt -max_total_time="$secs" -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/" $dict \
      "$scratch/$t" "$corpus" >"$log" 2>&1; then
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
    echo "fuzz_$t: ${runs:-?} runs in $secs s, no crash ($cov)"
    pass=$((pass + 1))
  else
    tail -n 60 "$log"
    art=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/^Test unit written to //')
    echo "fuzz_$t: FAILED (full log: $log)"
    if [ -n "$art" ]; then
      echo "  reproduce: $bin $art"
      echo "  once fixed, keep it as a regression: cp $art tests/fuzz/corpus/$t/regress-<what>"
    fi
    fail=$((fail + 1))
  fi
done
[ $keep -eq 1 ] || rm -rf "$scratch"
echo "fuzz: $(( $(date +%s) - start )) s in all"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
