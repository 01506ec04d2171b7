#!/usr/bin/env bash
# A second environment for LTX-2.5: ltxtune with ltx-core 1.2 installed from a local copy of Lightricks' repository.
#
#   bash scripts/env_ltx_core_12.sh PATH [VENV]
#
# PATH: an LTX-2 checkout (git clone https://github.com/Lightricks/LTX-2 && git -C LTX-2 checkout v1.2.0), or its
#       packages/ltx-core folder: ltx-core and ltx-pipelines are installed from it.
# VENV: where the environment goes (default /work/venv-ltxcore12).
#
# ltx-core 1.2 is not on the package index, and it needs transformers >=5.8,<5.15 (Gemma 4) where ltxtune pins
# transformers>=4.52,<5 (what ltx-core 1.0.0 from the index loads Gemma 3 with). So the environment is built in two
# steps: ltxtune and the tested set (requirements/tested.txt), then ltx-core 1.2 with its transformers over them.
# pip then reports that ltxtune requires transformers<5: expected here, and the only conflict the check at the end
# lets through (`pip check` must show nothing else; ltxtune checks the ltx-core / transformers pair it loads Gemma
# with itself).
# pip's cache is used: the first build takes minutes, a rebuild much less.
set -euo pipefail
cd "$(dirname "$0")/.."

src="${1:?usage: bash scripts/env_ltx_core_12.sh PATH_TO_LTX-2_CHECKOUT_OR_packages/ltx-core [VENV]}"
venv="${2:-/work/venv-ltxcore12}"
[ -f "$src/packages/ltx-core/pyproject.toml" ] && src="$src/packages/ltx-core"
if ! grep -q '^name = "ltx-core"' "$src/pyproject.toml" 2>/dev/null; then
  echo "no ltx-core package at $src (give an LTX-2 checkout or its packages/ltx-core)" >&2
  exit 2
fi
src="$(cd "$src" && pwd)"

# ltx-pipelines of the same release, beside it in the checkout: ltx-pipelines 1.0.0 (the index's) does not import
# with ltx-core 1.2, and the tests compare validation with its denoising and defaults.
pipelines="$(dirname "$src")/ltx-pipelines"
if ! grep -q '^name = "ltx-pipelines"' "$pipelines/pyproject.toml" 2>/dev/null; then
  echo "no ltx-pipelines package beside $src (give the whole LTX-2 checkout)" >&2
  exit 2
fi

# The tested set less what ltx-core 1.2 resolves differently (itself, ltx-pipelines, transformers and the Hugging
# Face libraries that move with it).
constraints="$(mktemp)"
grep -viE '^(ltx-core|ltx-pipelines|transformers|tokenizers|huggingface[-_]hub|hf-xet)==' requirements/tested.txt \
  > "$constraints"

python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
start=$(date +%s)
"$venv/bin/pip" install --quiet -c "$constraints" -e ".[dev]"
echo "installing ltx-core 1.2, ltx-pipelines 1.2 and transformers 5 over ltxtune's transformers 4 (pip reports it below)"
# torchvision: Gemma 4's processor imports it (ltx-core builds the processor with the encoder); 0.26.0 is torch 2.11's.
"$venv/bin/pip" install --quiet -c "$constraints" "$src" "$pipelines" "transformers>=5.8,<5.15" torchvision==0.26.0
rm -f "$constraints"

# Every conflict pip sees, less the one this environment is built with.
conflicts="$("$venv/bin/pip" check 2>&1 || true)"
others="$(printf '%s\n' "$conflicts" | grep -v '^No broken requirements' | grep -viE '^ltxtune .* (requires|has requirement) transformers' || true)"
if [ -n "$others" ]; then
  printf 'unexpected conflicts in %s:\n%s\n' "$venv" "$others" >&2
  exit 1
fi
printf '%s\n' "$conflicts" | grep -iE '^ltxtune .* (requires|has requirement) transformers' \
  | sed 's/^/note (expected: ltx-core 1.2 needs transformers 5; ltxtune pins 4 for ltx-core 1.0.0): /' || true

"$venv/bin/python" - <<'PY'
import sys
from importlib.metadata import version
from ltxtune.app.environment import broken_imports
from ltxtune.errors import DataError
from ltxtune.ltx_core_api import builds_ltx25, check_transformers
broken = [b.line() for b in broken_imports()]
if not builds_ltx25():
    broken.append(f"ltx-core {version('ltx-core')} is installed, not 1.2")
try:
    check_transformers()
except DataError as exc:
    broken.append(str(exc))
for line in broken:
    print(line, file=sys.stderr)
print(f"ltx-core {version('ltx-core')}, ltx-pipelines {version('ltx-pipelines')},", end=" ")
print(f"transformers {version('transformers')}, torch {version('torch')}")
sys.exit(1 if broken else 0)
PY
echo "built $venv in $(( $(date +%s) - start )) s; run the tests with: $venv/bin/python -m pytest"
