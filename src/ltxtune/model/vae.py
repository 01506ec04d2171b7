"""ltx-core's video VAE decoder: tiny with seeded random weights, or the real one from an LTX-2 checkpoint.

Validation videos decode sampled latents with it. Both paths build ltx-core's own ``VideoDecoder`` through
``VideoDecoderConfigurator`` from a ``{"vae": {...}}`` config block, the one a real checkpoint stores in its
safetensors metadata; the real weights come through ltx-core's loader with its ComfyUI key filter.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ltxtune.errors import DataError
from ltxtune.ltx_core_api import build, decode_video, default_tiling

# 4x4 pixels per patch and three 2x space-time stages: 32x32 pixels and 8 frames per latent cell, like
# LTX-2's decoder, with 8x fewer channels per stage than its 128 base channels. Blocks are listed from the
# pixel side, as in ltx-core's configs (the decoder runs them in reverse): the residual block sees the
# latent grid, where it is cheapest.
TINY_DECODER_CONFIG: dict[str, Any] = {
    "dims": 3,
    "latent_channels": 128,
    "out_channels": 3,
    "patch_size": 4,
    "norm_layer": "pixel_norm",
    "causal_decoder": False,
    "timestep_conditioning": False,
    "decoder_base_channels": 8,
    "decoder_blocks": [
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["res_x", {"num_layers": 1}],
    ],
}


def build_tiny_decoder(seed: int, device: torch.device, config: dict[str, Any] | None = None) -> nn.Module:
    """ltx-core's ``VideoDecoder`` from ``config`` (``TINY_DECODER_CONFIG``) with every tensor drawn from ``seed``.

    Built on the meta device and then materialized, so that the global RNG is never drawn from (a
    validation must not change what training draws next).
    """
    from ltx_core.model.video_vae import VideoDecoderConfigurator

    with torch.device("meta"):
        decoder = build(VideoDecoderConfigurator, {"vae": config or TINY_DECODER_CONFIG})
    decoder = decoder.to_empty(device=device)
    init_decoder(decoder, seed)
    return decoder.eval().requires_grad_(False)


@torch.no_grad()
def init_decoder(decoder: nn.Module, seed: int) -> None:
    """``N(0, 1/fan_in)`` weights (unit-scale activations), zero biases, unit gains, identity latent statistics."""
    g = torch.Generator().manual_seed(seed)
    for name, param in sorted(decoder.named_parameters()):
        if param.dim() >= 2:
            values = torch.randn(param.shape, generator=g) / math.sqrt(param[0].numel())
        elif name.endswith("bias"):
            values = torch.zeros(param.shape)
        else:
            values = torch.ones(param.shape)
        param.copy_(values)
    for name, buffer in decoder.named_buffers():
        buffer.copy_(torch.zeros(buffer.shape) if name.endswith("mean-of-means") else torch.ones(buffer.shape))


def holds(checkpoint: Path, config_key: str, prefix: str) -> bool:
    """Whether ``checkpoint`` has a ``config_key`` block in its config metadata and weights named ``prefix*``."""
    from safetensors import safe_open

    with safe_open(str(checkpoint), "pt") as f:
        meta = f.metadata() or {}
        has_weights = any(k.startswith(prefix) for k in f.keys())  # noqa: SIM118 (safe_open is no dict)
    return has_weights and config_key in json.loads(meta.get("config", "{}"))


def has_video_decoder(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` holds a video VAE decoder (a ``vae`` config and ``vae.decoder.*`` weights)."""
    return holds(checkpoint, "vae", "vae.decoder.")


def load_frozen(
    checkpoint: Path, what: str, configurator: type, key_filter: Any, device: torch.device, dtype: torch.dtype
) -> nn.Module:
    """One ltx-core model from ``checkpoint`` through ``SingleGPUModelBuilder``, in eval mode and frozen.

    ``configurator`` builds it from the file's config metadata and ``key_filter`` (ltx-core's ``SDOps``) picks
    and renames its weights. Raises ``DataError`` naming ``what`` when the file lacks some of its weights.
    """
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder

    builder = SingleGPUModelBuilder(
        model_class_configurator=configurator, model_path=str(checkpoint), model_sd_ops=key_filter
    )
    model = builder.build(device=device, dtype=dtype)
    # ltx-core leaves tensors on "meta" for keys the file lacks, and only logs it.
    missing = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing:
        raise DataError(f"{checkpoint}: no {what} weights for {len(missing)} tensors (first: {missing[0]})")
    return model.eval().requires_grad_(False)


def load_decoder(checkpoint: Path, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The real decoder through ltx-core's ``SingleGPUModelBuilder``; ``DataError`` when weights are missing."""
    from ltx_core.model.video_vae import VAE_DECODER_COMFY_KEYS_FILTER, VideoDecoderConfigurator

    return load_frozen(
        checkpoint, "VAE decoder", VideoDecoderConfigurator, VAE_DECODER_COMFY_KEYS_FILTER, device, dtype
    )


def video_decoder(checkpoint: str | None, seed: int, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The real decoder when ``checkpoint`` holds one, else the tiny seeded one (warned when a file lacks it).

    A transformer-only file (the tiny test checkpoints, a split release) has no VAE: its videos are still
    written, decoded with random weights, and the warning says how to point at a VAE file.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if has_video_decoder(path):
            return load_decoder(path, device, dtype)
        warnings.warn(
            f"{path} holds no video VAE decoder: validation videos are decoded with random weights "
            "(a split release: model.vae_checkpoint=<its VAE file>; or set validation_videos.decoder_checkpoint "
            "to a file with 'vae.decoder.*' weights)",
            stacklevel=2,
        )
    return build_tiny_decoder(seed, device)


def write_tiny_vae_checkpoint(path: Path, seed: int = 0, config: dict[str, Any] | None = None) -> Path:
    """The tiny decoder in the real checkpoint layout (``vae.decoder.*``, ``vae.per_channel_statistics.*``, the
    ``{"vae": ...}`` config in the metadata), so that ltx-core's loader path can be tried without LTX-2's weights.
    """
    from safetensors.torch import save_file

    config = config or TINY_DECODER_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tiny_decoder_tensors(seed, config), str(path), metadata={"config": json.dumps({"vae": config})})
    return path


def tiny_decoder_tensors(seed: int, config: dict[str, Any] | None = None) -> dict[str, Tensor]:
    """The tiny decoder's weights under their checkpoint keys (``vae.decoder.*``, ``vae.per_channel_statistics.*``)."""
    decoder = build_tiny_decoder(seed, torch.device("cpu"), config)
    tensors = {}
    for name, value in decoder.state_dict().items():
        key = "vae." + name if name.startswith("per_channel_statistics.") else "vae.decoder." + name
        tensors[key] = value.contiguous()
    return tensors


# The encoder's side of the tiny VAE (``TINY_DECODER_CONFIG`` holds the decoder's): the same 4x4 patches, then a
# 2x space, a 2x time and two 2x space-time stages, 32x32 pixels and 8 frames per latent cell like the decoder.
# A checkpoint's one ``vae`` block configures both (ltx-core reads the keys of its side).
TINY_ENCODER_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "latent_log_var": "uniform",
    "encoder_blocks": [
        ["compress_space_res", {"multiplier": 1}],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
    ],
}


def tiny_vae_tensors(seed: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tiny video VAE, encoder and decoder, under their checkpoint keys (``vae.encoder.*``,
    ``vae.decoder.*``, their shared ``vae.per_channel_statistics.*``) and its ``vae`` config block."""
    from ltx_core.model.video_vae import VideoEncoderConfigurator

    config = {**TINY_DECODER_CONFIG, **TINY_ENCODER_CONFIG}
    with torch.device("meta"):
        encoder = build(VideoEncoderConfigurator, {"vae": config})
    encoder = encoder.to_empty(device="cpu")
    init_decoder(encoder, seed + 1)
    tensors = tiny_decoder_tensors(seed, config)
    for name, value in encoder.state_dict().items():
        if not name.startswith("per_channel_statistics."):  # one set, the decoder's (both are the identity)
            tensors["vae.encoder." + name] = value.contiguous()
    return tensors, config


@torch.no_grad()
def decode_frames(decoder: nn.Module, latents: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Video latents ``[1, 128, F, H, W]`` -> uint8 RGB frames ``[8*(F-1)+1, 32*H, 32*W, 3]`` on the CPU.

    Uses ltx-core's ``decode_video`` with its default tiling (512 px, 64 frames), so a full-size clip
    decodes in bounded memory; a small clip is a single tile.
    """
    dtype = next(decoder.parameters()).dtype
    chunks = decode_video(decoder, latents.to(dtype), default_tiling(), generator)
    return torch.cat([chunk.cpu() for chunk in chunks])
