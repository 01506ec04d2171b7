#!/usr/bin/env bash
# Start-up to the end of the first step against the bare imports it cannot avoid, run side by side:
# each round runs both commands, one after the other, so that load from elsewhere on the machine hits both alike.
# Prints wall and CPU (user + system) seconds of each run, then the medians and their ratio.
# Usage: bash bench/first_step.sh [rounds]   (from the repo root, with the environment activated; default 3)
# Target: the one-step run at most 1.5 times the bare imports (docs/performance.md).
set -euo pipefail
py=${PYTHON:-python}
rounds=${1:-3}
out=$(mktemp -d)
train=("$py" train.py trainer.max_steps=1 validation.every=0 validation_videos.enabled=false logger=none)
imports=("$py" -c "import torch, accelerate, peft, hydra, safetensors, ltx_core.model.transformer.model")
"${train[@]}" hydra.run.dir="$out/warm" > /dev/null 2>&1  # the synthetic dataset and the file cache, once
for i in $(seq "$rounds"); do
  /usr/bin/time -f "%e %U %S" -o "$out/t$i" "${train[@]}" hydra.run.dir="$out/run$i" > /dev/null 2>&1
  /usr/bin/time -f "%e %U %S" -o "$out/i$i" "${imports[@]}"
  read -r tw tu ts < "$out/t$i"; read -r iw iu is < "$out/i$i"
  echo "round $i: train.py ${tw} s wall, $(echo "$tu + $ts" | bc) s CPU; imports ${iw} s wall, $(echo "$iu + $is" | bc) s CPU"
done
$py - "$out" "$rounds" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(prefix, cpu):
    vals = []
    for i in range(1, rounds + 1):
        wall, user, system = map(float, open(f"{out}/{prefix}{i}").read().split())
        vals.append(user + system if cpu else wall)
    return statistics.median(vals)
for what, cpu in (("wall", False), ("CPU", True)):
    t, i = med("t", cpu), med("i", cpu)
    print(f"median {what}: train.py {t:.2f} s, imports {i:.2f} s, ratio {t / i:.2f}")
PY
rm -rf "$out"
