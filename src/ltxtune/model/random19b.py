"""LTX-2 19B as ltx-core builds it by default, with random weights made on the device: the step benchmark's model.

No checkpoint is read. The transformer and its text connectors are built on the meta device from ltx-core's
default config (the widths its configurators default to: 48 blocks, 32 x 128 video and 32 x 64 audio
attention, 3840-wide text features through two connector layers of 30 x 128), moved to the device empty and filled
in place, so the 38 GB of bf16 weights never pass through host memory. ``num_layers`` gives a shorter stack at
full width; ``sizes`` replaces other defaults (a narrow model for the CPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from torch import nn

from ltxtune.errors import ConfigError, check_choice, check_range
from ltxtune.ltx_core_api import build
from ltxtune.model.base import InputNeeds, LoadedModel, ModelSpec
from ltxtune.model.ltx2 import TextConnectors, connector_needs
from ltxtune.model.quantize import cast_fp8, check_quantization, quantize_int8
from ltxtune.model.tiny import transformer_config

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
# In ``transformer_config``'s order; the attention's context widths follow the heads and head widths.
LTX2_19B_WIDTHS = {
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
}
# ltx-core config keys ``sizes`` may set.
SIZE_KEYS = (*LTX2_19B_WIDTHS, "connector_num_attention_heads", "connector_attention_head_dim", "connector_num_layers")


def default_config(num_layers: int, caption_channels: int, sizes: dict[str, int]) -> dict[str, Any]:
    """The ``{"transformer": ...}`` config: LTX-2 19B's widths (ltx-core's configurator defaults, written out since
    its caption projection reads them from the config), the depth, ``sizes`` over them; the text connectors'
    sizes are left to ltx-core's defaults unless ``sizes`` sets them."""
    widths = {**LTX2_19B_WIDTHS, **{k: v for k, v in sizes.items() if k in LTX2_19B_WIDTHS}}
    config = transformer_config(num_layers, *widths.values(), caption_channels)
    config["transformer"].update({k: v for k, v in sizes.items() if k not in LTX2_19B_WIDTHS})
    return config


@torch.no_grad()
def fill_random(module: nn.Module, seed: int) -> None:
    """Scaled normal matrices, zero biases, unit gains, drawn on the parameters' own device in name order.

    An fp8 weight is drawn in bf16 and stored rounded (``torch.normal`` has no float8 kernel).
    """
    params = sorted(module.named_parameters())
    g = torch.Generator(params[0][1].device).manual_seed(seed)
    for name, param in params:
        if param.dim() >= 2:
            fp8 = param.dtype in (torch.float8_e4m3fn, torch.float8_e5m2)
            draw = torch.empty(param.shape, dtype=torch.bfloat16 if fp8 else param.dtype, device=param.device)
            param.copy_(draw.normal_(generator=g).mul_(1 / math.sqrt(param.shape[-1])))
        elif name.endswith("bias"):
            param.zero_()
        else:
            param.fill_(1.0)


def random_transformer(
    config: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype, quantization: str | None
) -> nn.Module:
    """ltx-core's ``LTXModel`` of ``config`` on ``device`` in ``dtype``, random, quantized as asked."""
    with torch.device("meta"):
        transformer = build(LTXModelConfigurator, config).to(dtype)
    if quantization == "fp8_cast":  # fp8 storage from the start: the bf16 block linears are never allocated
        transformer = cast_fp8(transformer)
    transformer = transformer.to_empty(device=device)
    fill_random(transformer, seed)
    if quantization == "int8":
        quantize_int8(transformer)
    return transformer


def random_connectors(config: dict[str, Any], seed: int, device: torch.device, dtype: torch.dtype) -> TextConnectors:
    """The frozen text connectors of ``config`` on ``device``, random."""
    with torch.device("meta"):
        connectors = TextConnectors(config).to(dtype)
    connectors = connectors.to_empty(device=device)
    fill_random(connectors, seed)
    return connectors.requires_grad_(False).eval()


class RandomLTX2(ModelSpec):
    """``model=random19b``: LTX-2 19B's architecture and size (or ``num_layers`` of its blocks) with random
    weights made on the device, for measuring a training step without a checkpoint; never for training."""

    def __init__(
        self,
        num_layers: int = 48,
        dtype: str = "bfloat16",
        quantization: str | None = None,
        caption_channels: int = 3840,
        sizes: dict[str, int] | None = None,
    ) -> None:
        check_range("num_layers", num_layers, 1)
        check_choice("dtype", dtype, tuple(_DTYPES))
        check_range("caption_channels", caption_channels, 1)
        check_quantization(quantization)
        if quantization and dtype != "bfloat16":
            raise ConfigError("dtype", dtype, f"bfloat16 with quantization={quantization} (the base is bf16 first)")
        sizes = dict(sizes or {})
        if unknown := sorted(set(sizes) - set(SIZE_KEYS)):
            raise ConfigError("sizes", unknown, f"keys among {', '.join(SIZE_KEYS)}")
        for key, value in sizes.items():
            check_range(f"sizes.{key}", value, 1)
        self._config = default_config(num_layers, caption_channels, sizes)
        self.dtype, self.quantization, self.caption_channels = dtype, quantization, caption_channels

    def config(self) -> dict[str, Any]:
        return self._config

    def input_needs(self) -> InputNeeds:
        return connector_needs(self._config)

    def build(self, seed: int, device: torch.device) -> LoadedModel:
        dtype = _DTYPES[self.dtype]
        transformer = random_transformer(self._config, seed, device, dtype, self.quantization)
        connectors = random_connectors(self._config, seed + 1, device, dtype)
        return LoadedModel(transformer=transformer, config=self._config, encode_text=connectors)
