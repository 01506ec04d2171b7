"""Resolution buckets ``WxHxF`` and the choice of one per clip; pixel masks to the latent grid."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ltxtune.errors import ConfigError

# ltx-core's VAE: 32x32 pixels per latent cell, 8 frames per latent frame after the first.
SPATIAL, TEMPORAL = 32, 8
AUDIO_STEPS_PER_SECOND = 25  # LTX-2's audio latents: 16 kHz, hop 160, downsampled 4 times


def audio_steps(frames: int, fps: float) -> int:
    """Audio latent steps as long as ``frames`` pixel frames at ``fps`` (as the data's audio is encoded)."""
    return max(1, round(frames / fps * AUDIO_STEPS_PER_SECOND))


@dataclass(frozen=True, order=True)
class Bucket:
    """A target clip size in pixels: ``width x height``, ``frames`` = 8k + 1."""

    width: int
    height: int
    frames: int

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"


def parse_buckets(specs: Sequence[str]) -> tuple[Bucket, ...]:
    """Parse ``["768x512x49", ...]``; raise ``ConfigError`` naming the first bad entry."""
    allowed = "WxHxF with W and H multiples of 32 and F = 8k + 1 (for example 768x512x49)"
    if not specs:
        raise ConfigError("buckets", list(specs), "at least one " + allowed)
    buckets = []
    for spec in specs:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*", str(spec))
        if not match:
            raise ConfigError("buckets", spec, allowed)
        w, h, f = map(int, match.groups())
        if w <= 0 or h <= 0 or w % SPATIAL or h % SPATIAL or f < 1 or (f - 1) % TEMPORAL:
            raise ConfigError("buckets", spec, allowed)
        buckets.append(Bucket(w, h, f))
    return tuple(buckets)


def choose_bucket(buckets: Sequence[Bucket], width: int, height: int, frames: int, is_image: bool) -> Bucket | None:
    """The bucket nearest the clip's aspect ratio, then with the most frames the clip has.

    An image takes the nearest aspect ratio with one frame. Returns ``None`` when the clip is shorter
    than every bucket. Aspect ratios are compared in log space, so 2:1 and 1:2 are equally far from 1:1.
    """
    fitting = [b for b in buckets if is_image or b.frames <= frames]
    if not fitting:
        return None
    aspect = math.log(width / height)
    best = min(fitting, key=lambda b: (round(abs(math.log(b.aspect) - aspect), 6), -b.frames))
    return Bucket(best.width, best.height, 1) if is_image else best


def mask_fraction_grid(mask: Tensor) -> Tensor:
    """Pixel mask ``[F, H, W]`` (1 = region to generate) -> ``[F', H', W']``: per latent cell, the fraction of
    the pixels it encodes that are to be generated, in [0, 1]. Latent frame 0 encodes pixel frame 0 alone; frame k
    encodes frames 8(k-1)+1 ... 8k, as the causal VAE does."""
    f, h, w = mask.shape
    m = mask.float()
    frames = torch.cat([m[:1], m[1:].reshape((f - 1) // TEMPORAL, TEMPORAL, h, w).mean(dim=1)])
    return torch.nn.functional.avg_pool2d(frames.unsqueeze(1), SPATIAL).squeeze(1)
