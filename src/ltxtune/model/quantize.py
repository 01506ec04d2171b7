"""Weight-only quantization of the frozen base for LoRA training (``model.quantization``).

Three ways to store the transformer blocks' linear weights in fewer bits; the LoRA adapters on top stay
float32 and are saved exactly as on an unquantized base, so the file loads onto the bf16 model inference uses:
- ``fp8_cast``: ltx-core's own policy (float8 storage upcast in forward), applied while loading;
- ``int8``: torchao's int8 weight-only quantization (per-channel scales), after loading; runs on a CPU too;
- ``int4``: torchao's int4 weight-only quantization (group size 128), after loading; its kernels need CUDA.
torchao is the maintained PyTorch library for this, peft wraps its tensors in LoRA layers natively
(``TorchaoLoraLinear``), and it adds no dependency of its own; optimum-quanto would pull in its own kernels
build (ninja) and peft supports its layers less directly.
"""

from __future__ import annotations

import importlib.util
import warnings

from torch import nn

from ltxtune.errors import ConfigError

QUANTIZATIONS = ("fp8_cast", "int8", "int4")
TORCHAO_KINDS = ("int8", "int4")
# Bytes per weight of the quantized block linears, for the dry run's memory estimate (scales not counted).
WEIGHT_BYTES = {"fp8_cast": 1.0, "int8": 1.0, "int4": 0.5}
_INT4_GROUP = 128
_INSTALL = "pip install -e '.[lowvram]' (torchao)"


def check_available(kind: str | None) -> None:
    """``ConfigError`` naming the extra to install when ``kind`` needs torchao and it is absent."""
    if kind in TORCHAO_KINDS and importlib.util.find_spec("torchao") is None:
        raise ConfigError("quantization", kind, f"fp8_cast or null unless torchao is installed: {_INSTALL}")


def is_block_linear(module: nn.Module, name: str) -> bool:
    """The linears of the transformer blocks: almost all weights (the embeddings and heads stay as loaded)."""
    return isinstance(module, nn.Linear) and name.startswith("transformer_blocks.")


def quantize_blocks(transformer: nn.Module, kind: str) -> nn.Module:
    """Replace the block linears' weights by torchao's ``kind`` tensors, in place; returns ``transformer``."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    config = Int8WeightOnlyConfig() if kind == "int8" else Int4WeightOnlyConfig(group_size=_INT4_GROUP)
    quantize_(transformer, config, filter_fn=is_block_linear)
    # peft warns that merging a LoRA into a torchao base is unsupported; ltxtune never merges.
    warnings.filterwarnings("ignore", message="TorchaoLoraLinear was instantiated without")
    return transformer
