"""Latents to pictures: video latents -> ltx-core's VAE decoder -> uint8 frames -> an ``.mp4`` (PyAV)."""

from __future__ import annotations

from pathlib import Path

import torch
from ltx_core.model.video_vae import TilingConfig, decode_video
from torch import Tensor, nn

from ltxtune.data.preprocess.media import write_clip


@torch.no_grad()
def decode_frames(decoder: nn.Module, latents: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Video latents ``[1, 128, F, H, W]`` -> uint8 RGB frames ``[8*(F-1)+1, 32*H, 32*W, 3]`` on the CPU.

    Uses ltx-core's ``decode_video`` with its default tiling (512 px, 64 frames), so a full-size clip
    decodes in bounded memory; a small clip is a single tile.
    """
    dtype = next(decoder.parameters()).dtype
    chunks = decode_video(latents.to(dtype), decoder, TilingConfig.default(), generator)
    return torch.cat([chunk.cpu() for chunk in chunks])


def write_mp4(path: Path, frames: Tensor, fps: float) -> Path:
    """Write uint8 frames ``[F, H, W, 3]`` as an H.264 ``.mp4`` (H and W even, as yuv420p needs)."""
    write_clip(path, frames, max(1, round(fps)))
    return path
