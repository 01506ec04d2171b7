"""Decoded media to files: uint8 frames and a waveform (``ltxtune.model.vae`` / ``audio_vae`` decode them) written
with PyAV (an ``.mp4`` with sound, or a ``.wav``), and the wandb media of those files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ltxtune.data.preprocess.media import write_audio, write_clip


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
