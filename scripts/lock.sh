#!/usr/bin/env bash
# Fresh install, timed, and the resolved set recorded: `bash scripts/lock.sh [--purge-cache]`.
#
# Makes a new virtual environment outside the tree, runs the README's set-up command in it, checks that every
# dependency imports, and writes the full resolved set to requirements/tested.txt (a pip constraints file:
# `pip install -e ".[dev]" -c requirements/tested.txt` reinstalls exactly the set that was tested).
# --purge-cache empties pip's cache first, so the time is that of a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--purge-cache" ]; then
  pip cache purge >/dev/null 2>&1 || true
fi
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip

start=$(date +%s)
pip install --quiet -e ".[dev]"
seconds=$(( $(date +%s) - start ))

python - <<'PY'
import sys
from ltxtune.app.environment import broken_imports
broken = broken_imports()
for b in broken:
    print(b.line(), file=sys.stderr)
sys.exit(1 if broken else 0)
PY

out=requirements/tested.txt
mkdir -p requirements
{
  echo "# The full set resolved by 'pip install -e \".[dev]\"' and tested with it (every import checked, then pytest)."
  echo "# Regenerate: bash scripts/lock.sh --purge-cache    Reinstall exactly: pip install -e \".[dev]\" -c $out"
  echo "# $(python --version), pip $(pip --version | cut -d' ' -f2), $(uname -sm), $(date -u +%Y-%m-%d)"
  pip freeze --exclude-editable | grep -v '^#' | LC_ALL=C sort -f
} > "$out"

size=$(du -sm "$venv" | cut -f1)
echo "install: ${seconds} s, environment: ${size} MiB, $(grep -vc '^#' "$out") packages -> $out"
rm -rf "$(dirname "$venv")"
