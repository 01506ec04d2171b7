#!/usr/bin/env bash
# `python train.py` (the defaults) of two checkouts, OMP_NUM_THREADS unset, interleaved round by round so that
# the load from elsewhere hits both alike: on a quiet machine, then with 2 busy loops beside (docs/performance.md,
# "CPU threads"). Each line: the checkout, wall seconds, exit code, 1-minute load average, the threads it chose.
# Usage: bash bench/threads.sh BEFORE_CHECKOUT [AFTER_CHECKOUT=.] [rounds=3]   (from the repo root)
set -uo pipefail
py=${PYTHON:-python}
before=$(realpath "$1") after=$(realpath "${2:-.}") rounds=${3:-3}
out=$PWD/outputs/bench-threads
mkdir -p "$out"
run() {  # label checkout
  local start rc
  start=$(date +%s.%N)
  env -u OMP_NUM_THREADS PYTHONPATH="$2/src" $py "$2/train.py" hydra.run.dir="$out/$1-$RANDOM" > "$out/$1.out" 2>&1
  rc=$?
  echo "$1 $(echo "$(date +%s.%N) - $start" | bc) s rc=$rc load=$(cut -d' ' -f1 /proc/loadavg)" \
    "$(grep -o 'cpu threads: [0-9]*' "$out/$1.out" || echo 'cpu threads: torch default')"
}
run warm-up "$after"  # writes the synthetic dataset once (both read .ltxtune/synthetic from here)
for load in quiet loaded; do
  busy=()
  if [ $load = loaded ]; then
    for _ in 1 2; do $py -c "while True: pass" & busy+=($!); done
  fi
  for _ in $(seq "$rounds"); do
    run "$load-before" "$before"
    run "$load-after" "$after"
  done
  [ ${#busy[@]} -gt 0 ] && kill "${busy[@]}"
done
