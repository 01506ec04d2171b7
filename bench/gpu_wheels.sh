#!/usr/bin/env bash
# The wheels a GPU machine without network lacks to run ltxtune from a checkout (bench/README.md says how to
# install them there). Such a machine's PyTorch image holds torch, torchaudio, accelerate, peft, safetensors and
# transformers, and what they and ltx-core need (numpy, scipy, einops, PyYAML, packaging, tqdm); this fetches the
# rest of what ltxtune imports: ltx-core, hydra-core, omegaconf, antlr4-python3-runtime, torchao and av (PyAV), at
# the versions in requirements/tested.txt, without their dependencies, for CPython on x86-64 Linux.
#
#   bash bench/gpu_wheels.sh [folder] [python version]      # defaults: .gpu-wheels 3.12
#
# Each wheel must be pure Python or built for that Python (cpXY, or the stable ABI abi3 of an earlier one);
# the script checks it. antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 needs) is published as source only:
# it is built here into a pure-Python wheel.
set -euo pipefail

folder=${1:-.gpu-wheels}
python_version=${2:-3.12}
python=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)

pin() {  # NAME -> NAME==VERSION from requirements/tested.txt
    grep -i "^$1==" "$root/requirements/tested.txt" || { echo "$1 is not in requirements/tested.txt" >&2; exit 1; }
}

mkdir -p "$folder"
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --dest "$folder" \
    "$(pin ltx-core)" "$(pin hydra-core)" "$(pin omegaconf)" "$(pin torchao)" "$(pin av)"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$folder" "$(pin antlr4-python3-runtime)"

# name-version-pythontag-abitag-platform.whl: pure Python, this CPython, or the stable ABI of one before it.
cp_tag="cp${python_version/./}"
bad=0
for wheel in "$folder"/*.whl; do
    IFS=- read -r _ _ python_tag abi_tag _ <<<"$(basename "$wheel" .whl)"
    if [[ $abi_tag == none && $python_tag == py3* ]] || [[ $python_tag == "$cp_tag" ]] ||
        [[ $abi_tag == abi3 && ${python_tag#cp} -le ${cp_tag#cp} ]]; then
        echo "ok   $(basename "$wheel")"
    else
        echo "BAD  $(basename "$wheel"): not pure Python, nor built for CPython $python_version" >&2
        bad=1
    fi
done
exit $bad
