#!/usr/bin/env bash
# A second environment for LTX-2.5: ltxtune with ltx-core 1.2 installed from a local copy of Lightricks' repository.
#
#   bash scripts/env_ltx_core_12.sh PATH [VENV]
#
# PATH: an LTX-2 checkout (git clone https://github.com/Lightricks/LTX-2 && git -C LTX-2 checkout v1.2.0), or its
#       packages/ltx-core folder.  VENV: where the environment goes (default /work/venv-ltxcore12).
#
# ltx-core 1.2 is not on the package index, and it needs transformers >=5.8,<5.15 (Gemma 4) where the tested set
# has a newer one; the rest is the tested set (requirements/tested.txt), torch and torchaudio exactly as pinned.
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

# The tested set less what ltx-core 1.2 resolves differently (itself, transformers and the Hugging Face libraries
# that move with it).
constraints="$(mktemp)"
grep -viE '^(ltx-core|transformers|tokenizers|huggingface[-_]hub|hf-xet)==' requirements/tested.txt > "$constraints"

python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
start=$(date +%s)
"$venv/bin/pip" install --quiet -c "$constraints" -e ".[dev]" "$src" "transformers>=5.8,<5.15"
rm -f "$constraints"

"$venv/bin/python" - <<'PY'
import sys
from importlib.metadata import version
from ltxtune.app.environment import broken_imports
broken = broken_imports()
for b in broken:
    print(b.line(), file=sys.stderr)
print(f"ltx-core {version('ltx-core')}, transformers {version('transformers')}, torch {version('torch')}")
sys.exit(1 if broken else 0)
PY
echo "built $venv in $(( $(date +%s) - start )) s; run the tests with: $venv/bin/python -m pytest"
