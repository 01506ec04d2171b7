"""Latents to media: video latents -> ltx-core's VAE decoder -> uint8 frames, audio latents -> ltx-core's audio
VAE decoder and vocoder -> a waveform; both written with PyAV (an ``.mp4`` with sound, or a ``.wav``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ltx_core.model.audio_vae import decode_audio
from ltx_core.model.video_vae import TilingConfig, decode_video
from torch import Tensor, nn

from ltxtune.data.preprocess.media import write_audio, write_clip
from ltxtune.model.audio_vae import WaveformDecoder


@torch.no_grad()
def decode_frames(decoder: nn.Module, latents: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Video latents ``[1, 128, F, H, W]`` -> uint8 RGB frames ``[8*(F-1)+1, 32*H, 32*W, 3]`` on the CPU.

    Uses ltx-core's ``decode_video`` with its default tiling (512 px, 64 frames), so a full-size clip
    decodes in bounded memory; a small clip is a single tile.
    """
    dtype = next(decoder.parameters()).dtype
    chunks = decode_video(latents.to(dtype), decoder, TilingConfig.default(), generator)
    return torch.cat([chunk.cpu() for chunk in chunks])


@torch.no_grad()
def decode_waveform(decoder: WaveformDecoder, latents: Tensor) -> Tensor:
    """Audio latents ``[1, 8, T, 16]`` -> stereo waveform ``[2, S]`` float32 on the CPU, at ``decoder.sample_rate``.

    ltx-core's ``decode_audio``: the causal decoder gives ``4T - 3`` mel frames (10 ms each for LTX-2), so
    S falls 3 mel frames short of T latent steps' 40 ms each.
    """
    dtype = next(decoder.decoder.parameters()).dtype
    return decode_audio(latents.to(dtype), decoder.decoder, decoder.vocoder).waveform.float().cpu()


def fit_length(audio: Tensor, samples: int) -> Tensor:
    """``audio [C, S]`` cut to ``samples``, or padded with silence at the end up to it."""
    return F.pad(audio[:, :samples], (0, max(0, samples - audio.shape[1])))


def write_mp4(path: Path, frames: Tensor, fps: float, audio: Tensor | None = None, sample_rate: int = 0) -> Path:
    """Write uint8 frames ``[F, H, W, 3]`` as an H.264 ``.mp4`` (H and W even, as yuv420p needs).

    ``audio [2, S]`` at ``sample_rate`` becomes an AAC stream, cut or padded to the clip's ``F / fps`` seconds.
    """
    rate = max(1, round(fps))  # the stream's frame rate is a whole number of frames per second
    if audio is not None:
        audio = fit_length(audio, round(len(frames) / rate * sample_rate))
    write_clip(path, frames, rate, audio, sample_rate)
    return path


def write_wav(path: Path, audio: Tensor, sample_rate: int) -> Path:
    """Write ``audio [2, S]`` as a 16-bit ``.wav`` (an audio-only clip: every sample, none added)."""
    write_audio(path, audio, sample_rate)
    return path


def wandb_media(paths: Sequence[Path]) -> dict[str, Any]:
    """``{"val/video/prompt<i>": wandb.Video}`` for ``.mp4`` paths (their sound included),
    ``{"val/audio/prompt<i>": wandb.Audio}`` for ``.wav`` ones and ``{"val/preview": wandb.Image}`` for the
    latent preview; all from the file (no moviepy or soundfile).
    """
    import wandb

    media = {}
    for p in paths:
        if p.suffix == ".wav":
            media[f"val/audio/{p.stem}"] = wandb.Audio(str(p))
        elif p.suffix == ".png":
            media[f"val/{p.stem}"] = wandb.Image(str(p))
        else:
            media[f"val/video/{p.stem}"] = wandb.Video(str(p), format="mp4")
    return media
