"""Token layouts and RoPE positions, from ltx-core's own patchifiers so they match inference exactly."""

from __future__ import annotations

import torch
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier, get_pixel_coords
from ltx_core.types import AudioLatentShape, SpatioTemporalScaleFactors, VideoLatentShape
from torch import Tensor

DEFAULT_FPS = 24.0
VIDEO_CHANNELS, AUDIO_CHANNELS, AUDIO_MEL_BINS = 128, 8, 16
VIDEO_SCALE = SpatioTemporalScaleFactors.default()

_video_patchifier = VideoLatentPatchifier(patch_size=1)
_audio_patchifier = AudioPatchifier(patch_size=1)


def patchify_video(latents: Tensor) -> Tensor:
    """``[B, 128, F, H, W]`` -> ``[B, F*H*W, 128]``, frame-major (token = f*H*W + h*W + w)."""
    return _video_patchifier.patchify(latents)


def unpatchify_video(tokens: Tensor, frames: int, height: int, width: int) -> Tensor:
    """``[B, F*H*W, C]`` (frame-major, as ``patchify_video`` gives) -> ``[B, C, F, H, W]``."""
    shape = VideoLatentShape(tokens.shape[0], tokens.shape[-1], frames, height, width)
    return _video_patchifier.unpatchify(tokens, output_shape=shape)


def patchify_audio(latents: Tensor) -> Tensor:
    """``[B, 8, T, 16]`` -> ``[B, T, 128]``."""
    return _audio_patchifier.patchify(latents)


def unpatchify_audio(tokens: Tensor) -> Tensor:
    """``[B, T, 128]`` -> ``[B, 8, T, 16]`` (the inverse of ``patchify_audio``)."""
    b, t, _ = tokens.shape
    shape = AudioLatentShape(batch=b, channels=AUDIO_CHANNELS, frames=t, mel_bins=AUDIO_MEL_BINS)
    return _audio_patchifier.unpatchify(tokens, output_shape=shape)


def video_positions(frames: int, height: int, width: int, fps: Tensor, device: torch.device) -> Tensor:
    """Pixel-space RoPE bounds ``[B, 3, F*H*W, 2]`` with time in seconds (``fps`` is ``[B]``)."""
    shape = VideoLatentShape(batch=fps.shape[0], channels=VIDEO_CHANNELS, frames=frames, height=height, width=width)
    grid = _video_patchifier.get_patch_grid_bounds(output_shape=shape, device=device)
    coords = get_pixel_coords(latent_coords=grid, scale_factors=VIDEO_SCALE, causal_fix=True).float()
    coords[:, 0] = coords[:, 0] / fps.to(device=device, dtype=coords.dtype).view(-1, 1, 1)
    return coords


def audio_positions(steps: int, batch: int, device: torch.device) -> Tensor:
    """Audio RoPE bounds ``[B, 1, T, 2]`` in seconds, from the audio patchifier."""
    shape = AudioLatentShape(batch=batch, channels=AUDIO_CHANNELS, frames=steps, mel_bins=AUDIO_MEL_BINS)
    return _audio_patchifier.get_patch_grid_bounds(output_shape=shape, device=device)
