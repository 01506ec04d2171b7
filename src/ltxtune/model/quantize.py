"""Weight-only quantization of the frozen base for LoRA training (``model.quantization``).

Two ways to store the transformer blocks' linear weights in 8 bits; the LoRA adapters on top stay float32 and
are saved exactly as on an unquantized base, so the file loads onto the bf16 model inference uses:
- ``fp8_cast``: ltx-core's own policy (float8 storage upcast in forward), applied while loading;
- ``int8``: torchao's int8 weight-only quantization (a scale per output channel), after loading; runs on a
  CPU too. torchao is PyTorch's own maintained library for this, peft wraps its tensors in LoRA layers
  natively (``TorchaoLoraLinear``), and it pulls in no other package; optimum-quanto would add a kernels
  build (ninja) and has no LoRA layer in peft.
4-bit is not offered: peft's torchao LoRA layer refuses torchao's int4 weights ("only supports int8 weights
for now", peft 0.21), and torchao's int4 kernels need CUDA (and mslk >= 1.0, which PyPI does not carry).
"""

from __future__ import annotations

import importlib.util
import warnings

from torch import nn

from ltxtune.errors import ConfigError
from ltxtune.ltx_core_api import fp8_cast_policy

QUANTIZATIONS = ("fp8_cast", "int8")
# Bytes per weight of the quantized block linears, for the dry run's memory estimate (scales not counted).
WEIGHT_BYTES = {"fp8_cast": 1.0, "int8": 1.0}
_INSTALL = "pip install -e '.[lowvram]' (torchao)"


def check_quantization(kind: str | None) -> None:
    """``ConfigError`` for a kind that is not offered, or that needs torchao when it is not installed."""
    if kind == "int4":
        raise ConfigError(
            "quantization",
            kind,
            "fp8_cast or int8 (4-bit is not offered: peft's torchao LoRA layer takes int8 weights only, and "
            "torchao's int4 kernels need CUDA)",
        )
    if kind is not None and kind not in QUANTIZATIONS:
        raise ConfigError("quantization", kind, f"one of {', '.join(QUANTIZATIONS)}, or null")
    if kind == "int8" and importlib.util.find_spec("torchao") is None:
        raise ConfigError("quantization", kind, f"fp8_cast or null unless torchao is installed: {_INSTALL}")


def is_block_linear(module: nn.Module, name: str) -> bool:
    """The linears of the transformer blocks: almost all weights (the embeddings and heads stay as loaded)."""
    return isinstance(module, nn.Linear) and name.startswith("transformer_blocks.")


def cast_fp8(transformer: nn.Module) -> nn.Module:
    """ltx-core's ``fp8_cast`` policy applied to a built transformer (a checkpoint's loader applies it to the
    state dict instead): its rule stores the block linears' weights and biases as float8_e4m3fn, and its module
    op upcasts them in every linear's forward. On a meta-device transformer the storage is fp8 from the start, so
    the full bf16 weights are never allocated. Returns ``transformer``, changed in place."""
    policy = fp8_cast_policy()
    cast = {}
    for name, param in transformer.named_parameters():
        [(_, value)] = policy.sd_ops.apply_to_key_value(name, param.detach())
        if value.dtype != param.dtype:
            cast[name] = value
    # The module op first: ltx-core 1.2's retypes the linears' parameters to empty fp8 ones (1.0's changes the
    # forward only), so the cast values go in after it.
    for op in policy.module_ops:
        if op.matcher(transformer):
            transformer = op.mutator(transformer)
    for name, value in cast.items():
        owner, leaf = name.rsplit(".", 1)
        transformer.get_submodule(owner).register_parameter(leaf, nn.Parameter(value, requires_grad=False))
    return transformer


def quantize_int8(transformer: nn.Module) -> nn.Module:
    """Replace the block linears' weights by torchao's int8 weight-only tensors, in place; returns it."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(transformer, Int8WeightOnlyConfig(), filter_fn=is_block_linear)
    # peft warns that merging a LoRA into a torchao base needs more setup; ltxtune never merges.
    warnings.filterwarnings("ignore", message="TorchaoLoraLinear was instantiated without")
    return transformer
