"""A generated dataset in the precomputed layout, with structure a model can learn.

Each caption class owns a latent picture (and an audio rhythm): a blob in the class's tint moving along the
class's path over the class's background, spread over a few fixed channel directions, as real VAE latents
are low-rank; samples of a class vary by a small shift of the path. The latent preview
(``ltxtune.evaluation.previews``) shows it. A model that reads the caption can predict the clean latents far
better than one that cannot, so the training loss and the validation loss fall visibly within a minute on a CPU.
Every directory any built-in strategy reads is written, so every strategy trains on it as it is.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.preprocess.buckets import AUDIO_STEPS_PER_SECOND, TEMPORAL, audio_steps
from ltxtune.data.spec import PrecomputedData
from ltxtune.errors import ConfigError, check_range
from ltxtune.files import exclusive_lock

FORMAT_VERSION = 3
CAPTIONS = (
    "a red ball bouncing on a wooden floor",
    "waves rolling onto a sandy beach at dusk",
    "a city street with cars passing in the rain",
    "leaves swirling in the autumn wind",
)
_PATTERN_RANK = 4  # latent channels vary along this many fixed directions, as real VAE latents are low-rank
_BLOB_RADIUS = 0.2  # in frame heights and widths


class SyntheticData(PrecomputedData):
    """Writes the dataset under ``root`` once and reuses it while its parameters are unchanged."""

    def __init__(
        self,
        root: str = ".ltxtune/synthetic",
        num_samples: int = 64,
        val_samples: int | None = 8,
        frames: int = 3,
        height: int = 4,
        width: int = 6,
        text_tokens: int = 16,
        caption_dim: int = 32,
        audio_caption_dim: int | None = None,
        reference_downscale: int = 2,
        fps: float = 24.0,
        seed: int = 0,
        cache: bool = True,
        strict: bool = True,
        val_fraction: float = 0.1,
    ) -> None:
        super().__init__(root, val_samples, cache, strict, val_fraction)
        for key in ("num_samples", "frames", "height", "width", "text_tokens", "caption_dim", "reference_downscale"):
            check_range(key, locals()[key], 1)
        check_range("fps", fps, 0.0, lo_open=True)
        if audio_caption_dim is not None:
            check_range("audio_caption_dim", audio_caption_dim, 1)
        if val_samples is not None and val_samples >= num_samples:
            raise ConfigError("val_samples", val_samples, f"< num_samples ({num_samples})")
        if height % reference_downscale or width % reference_downscale:
            raise ConfigError(
                "reference_downscale", reference_downscale, f"a divisor of height {height} and width {width}"
            )
        self.params: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "num_samples": num_samples,
            "frames": frames,
            "height": height,
            "width": width,
            "text_tokens": text_tokens,
            "caption_dim": caption_dim,
            # only when it differs (LTX-2.3): datasets written before keep their marker, and are reused
            **({"audio_caption_dim": audio_caption_dim} if audio_caption_dim not in (None, caption_dim) else {}),
            "reference_downscale": reference_downscale,
            "fps": fps,
            "seed": seed,
        }

    def is_current(self) -> bool:
        marker = self.root / "synthetic.json"
        return marker.is_file() and json.loads(marker.read_text()) == self.params

    def prepare(self) -> None:
        """Write the dataset unless it is already there with these parameters.

        One process writes at a time (torchrun ranks, parallel sweep jobs): the others wait on the lock and
        then find the dataset complete. It is built beside the target and renamed, so a kill never leaves
        half a dataset under ``data.root``.
        """
        if self.is_current():
            return
        with exclusive_lock(self.root.with_name(f".{self.root.name}.lock")):
            if self.is_current():  # another process wrote it while this one waited
                return
            if self.root.exists() and not (self.root / "synthetic.json").is_file():
                raise ConfigError(
                    "data.root", str(self.root), "a directory data=synthetic may write (this one holds other data)"
                )
            tmp = self.root.with_name(f"{self.root.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            write_dataset(tmp, **{k: v for k, v in self.params.items() if k != "format"})
            (tmp / "synthetic.json").write_text(json.dumps(self.params, indent=1))
            if self.root.exists():  # written with other parameters
                shutil.rmtree(self.root)
            tmp.rename(self.root)


def _moving_blob(
    motion: torch.Tensor, tint: torch.Tensor, offset: torch.Tensor, f: int, h: int, w: int, scale: int = 1
) -> torch.Tensor:
    """``[R, F, H, W]``: a round blob crossing the frame on the class's path, in the class's tint, over the
    class's background. ``motion`` = (y0, x0, dy, dx) in frame units, ``tint`` = ``[2, R]`` (blob, background),
    ``offset`` = the sample's own shift of the path; ``scale`` samples a coarser grid of the same picture."""
    tt = (torch.arange(f).view(f, 1, 1) / max(f - 1, 1)).float()
    yy = (torch.arange(h).view(1, h, 1) * scale + (scale - 1) / 2 + 0.5) / (h * scale)
    xx = (torch.arange(w).view(1, 1, w) * scale + (scale - 1) / 2 + 0.5) / (w * scale)
    cy = motion[0] + motion[2] * tt + offset[0]
    cx = motion[1] + motion[3] * tt + offset[1]
    blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * _BLOB_RADIUS**2))  # [F, H, W]
    return tint[0].view(-1, 1, 1, 1) * blob + tint[1].view(-1, 1, 1, 1)


@dataclass(frozen=True)
class _Classes:
    """What the samples of each caption share: the blob's path and tint, the audio's rhythm, the text features,
    and the fixed channel directions every latent is spread over."""

    basis: Tensor  # [128, R]
    motion: Tensor  # [classes, 4]: start y, x, then the move over the clip
    tint: Tensor  # [classes, 2, R]: the blob's and the background's
    audio_basis: Tensor  # [8 * 16, R]
    audio_freqs: Tensor  # [classes, R]
    text: Tensor  # [classes, L, D]
    audio_text: Tensor  # [classes, L, D_audio]
    lengths: list[int]  # the caption's tokens (the rest is padding)


def _draw_classes(g: torch.Generator, classes: int, text_tokens: int, caption_dim: int, audio_dim: int) -> _Classes:
    basis = torch.randn(128, _PATTERN_RANK, generator=g) / math.sqrt(_PATTERN_RANK / 2)
    # Each class's blob starts somewhere in the middle of the frame and crosses a third of it, its own way.
    angle = 2 * math.pi * torch.rand(classes, generator=g)
    start = 0.35 + 0.3 * torch.rand(classes, 2, generator=g)
    motion = torch.cat([start - 0.17 * torch.stack([angle.sin(), angle.cos()], 1),
                        0.34 * torch.stack([angle.sin(), angle.cos()], 1)], dim=1)  # fmt: skip
    tint = torch.stack([2.0 * torch.randn(classes, _PATTERN_RANK, generator=g),
                        0.7 * torch.randn(classes, _PATTERN_RANK, generator=g)], dim=1)  # fmt: skip
    audio_basis = torch.randn(8 * 16, _PATTERN_RANK, generator=g) / math.sqrt(_PATTERN_RANK / 2)
    audio_freqs = 1 + 3 * torch.rand(classes, _PATTERN_RANK, generator=g)
    text = torch.randn(classes, text_tokens, caption_dim, generator=g)
    audio_text = torch.randn(classes, text_tokens, audio_dim, generator=g)
    lengths = [max(1, text_tokens - 2 * k) for k in range(classes)]
    return _Classes(basis, motion, tint, audio_basis, audio_freqs, text, audio_text, lengths)


@dataclass(frozen=True)
class _Shape:
    frames: int
    height: int
    width: int
    reference_downscale: int
    fps: float
    audio_steps: int


def _media(g: torch.Generator, c: _Classes, k: int, shape: _Shape) -> dict[str, dict[str, Any]]:
    """The clip, its reference and its audio (and the audio reference) of one sample of class ``k``."""
    frames, height, width, scale = shape.frames, shape.height, shape.width, shape.reference_downscale
    rh, rw = height // scale, width // scale
    phase = 0.3 * torch.randn(_PATTERN_RANK, generator=g)
    offset = 0.04 * torch.randn(2, generator=g)
    video = torch.einsum("cr,rfhw->cfhw", c.basis, _moving_blob(c.motion[k], c.tint[k], offset, frames, height, width))
    ref_field = _moving_blob(c.motion[k], c.tint[k], offset, frames, rh, rw, scale=scale)
    reference = torch.einsum("cr,rfhw->cfhw", c.basis, ref_field)
    t = torch.arange(shape.audio_steps).view(1, -1) / AUDIO_STEPS_PER_SECOND
    wave = torch.sin(2 * math.pi * c.audio_freqs[k].view(-1, 1) * t + phase.view(-1, 1))  # [R, T]
    audio = (c.audio_basis @ wave).view(8, 16, shape.audio_steps).permute(0, 2, 1).contiguous()  # [8, T, 16]
    # An audio reference for IC-LoRA: the same rhythm a quarter period later (related, not a copy).
    ref_wave = torch.sin(2 * math.pi * c.audio_freqs[k].view(-1, 1) * t + phase.view(-1, 1) + math.pi / 2)
    ref_audio = (c.audio_basis @ ref_wave).view(8, 16, shape.audio_steps).permute(0, 2, 1).contiguous()
    info = {"num_frames": frames, "height": height, "width": width, "fps": shape.fps}
    return {
        "latents": {"latents": video, **info},
        "reference_latents": {"latents": reference, **info, "height": rh, "width": rw},
        "audio_latents": {"latents": audio, "num_time_steps": shape.audio_steps},
        "reference_audio_latents": {"latents": ref_audio, "num_time_steps": shape.audio_steps},
    }


def _text(g: torch.Generator, c: _Classes, k: int) -> dict[str, Tensor]:
    """The caption's text features, a little jittered per sample, and its attention mask."""
    text_tokens, caption_dim = c.text.shape[1:]
    audio_dim = c.audio_text.shape[2]
    mask = torch.zeros(text_tokens, dtype=torch.long)
    mask[: c.lengths[k]] = 1
    jitter = 0.05 * torch.randn(text_tokens, caption_dim, generator=g)
    # LTX-2.3's audio features have their own width: their own jitter (the draws stay as before otherwise)
    audio_jitter = jitter if audio_dim == caption_dim else 0.05 * torch.randn(text_tokens, audio_dim, generator=g)
    video_embeds = (c.text[k] + jitter) * mask.view(-1, 1)
    audio_embeds = (c.audio_text[k] + audio_jitter) * mask.view(-1, 1)
    return {"video_prompt_embeds": video_embeds, "audio_prompt_embeds": audio_embeds, "prompt_attention_mask": mask}


def _masks(g: torch.Generator, shape: _Shape) -> dict[str, dict[str, Any]]:
    """A rectangle to inpaint in every frame (and its mask latents), and a span of the audio to regenerate."""
    frames, height, width = shape.frames, shape.height, shape.width
    keep = torch.ones(frames, height, width)
    y0 = int(torch.randint(0, max(1, height // 2), (1,), generator=g))
    x0 = int(torch.randint(0, max(1, width // 2), (1,), generator=g))
    keep[:, y0 : y0 + max(1, height // 2), x0 : x0 + max(1, width // 2)] = 0
    # The fraction to generate of each hole cell varies (0.2..1.0, as cells on a drawn edge are partly masked), so
    # that mask_threshold decides which tokens are inpainted.
    ramp = 0.2 + 0.8 * torch.rand(frames, height, width, generator=g)
    mask_latents = ((1 - keep) * ramp).unsqueeze(0).expand(128, -1, -1, -1).contiguous()
    audio_keep = torch.ones(shape.audio_steps)
    start = int(torch.randint(0, max(1, shape.audio_steps // 2), (1,), generator=g))
    audio_keep[start : start + max(1, shape.audio_steps // 2)] = 0
    info = {"num_frames": frames, "height": height, "width": width, "fps": shape.fps}
    return {
        "mask_latents": {"latents": mask_latents, **info},
        "video_masks": {"mask": keep},
        "audio_masks": {"mask": audio_keep},
    }


def write_dataset(
    root: Path,
    num_samples: int,
    frames: int,
    height: int,
    width: int,
    text_tokens: int,
    caption_dim: int,
    reference_downscale: int,
    fps: float,
    seed: int,
    audio_caption_dim: int | None = None,
) -> None:
    g = torch.Generator().manual_seed(seed)
    classes = _draw_classes(g, len(CAPTIONS), text_tokens, caption_dim, audio_caption_dim or caption_dim)
    pixel_frames = (frames - 1) * TEMPORAL + 1
    shape = _Shape(frames, height, width, reference_downscale, fps, audio_steps(pixel_frames, fps))
    for i in range(num_samples):
        k = i % len(CAPTIONS)
        # The draws in the order they were always made: the same seed gives the same dataset.
        files = {**_media(g, classes, k, shape), "conditions": _text(g, classes, k), **_masks(g, shape)}
        for directory, content in files.items():
            (root / directory).mkdir(parents=True, exist_ok=True)
            torch.save(content, root / directory / f"sample_{i:04d}.pt")
    (root / "captions.json").write_text(
        json.dumps({f"sample_{i:04d}.pt": CAPTIONS[i % len(CAPTIONS)] for i in range(num_samples)}, indent=1)
    )
