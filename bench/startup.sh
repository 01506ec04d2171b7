#!/usr/bin/env bash
# Wall time of the two commands a new user runs first, three runs each (targets: --cfg job < 1.5 s, a default
# run < 60 s; docs/performance.md).
# Usage: bash bench/startup.sh   (from the repo root, with the environment activated)
set -euo pipefail
py=${PYTHON:-python}
for i in 1 2 3; do
  /usr/bin/time -f "train.py --cfg job: %e s" $py train.py --cfg job > /dev/null
done
for i in 1 2 3; do
  /usr/bin/time -f "train.py (defaults): %e s" $py train.py hydra.run.dir=outputs/bench-startup-$i 2>&1 \
    | grep -E "s$|status" | grep -v "step/s"
done
