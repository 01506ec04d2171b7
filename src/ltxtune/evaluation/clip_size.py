"""A validation prompt's own clip size: ``width``, ``height`` and ``frames`` in pixels, on the model's latent grid.

A prompt renders at its held-out template sample's size and length unless it asks for another. Asked sizes are
checked when the config is read (``check_size``): width and height multiples of 32, frames ``8k + 1``, as
LTX-2's VAE encodes them. ``resized`` turns the template into a sample of the asked size before the prompt's
media fill it: its clips become zeros of the new latent grid, its masks are resized to it (nearest cell), and
the audio lasts as long as the new frames.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.batch import Batch, Clip
from ltxtune.data.preprocess.buckets import SPATIAL, TEMPORAL, audio_steps
from ltxtune.errors import ConfigError

SIZE_KEYS = ("width", "height", "frames")
DEFAULT_FPS = 24.0  # a template without a frame rate (ltxtune.diffusion.positions, which imports ltx-core)


def check_size(key: str, name: str, value: Any, text: str) -> int | None:
    """``value`` of the size key ``name`` (``width``, ``height``, ``frames``) of the prompt ``text``, or ``None``.

    Raises ``ConfigError`` naming ``key``, the value and the nearest values on the grid.
    """
    if value is None:
        return None
    if name == "frames":
        step, first, rule = TEMPORAL, 1, f"{TEMPORAL}k + 1 frames (the first frame, then {TEMPORAL} per latent frame)"
    else:
        step, first, rule = SPATIAL, SPATIAL, f"a multiple of {SPATIAL} pixels (a latent cell is {SPATIAL}x{SPATIAL})"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, value, f"a whole number, {rule}, or left out (prompt {text!r})")
    if value >= first and (value - first) % step == 0:
        return value
    below = first + (value - first) // step * step
    nearest = f"{below} and {below + step}" if value > first else str(first)
    raise ConfigError(key, value, f"{rule}; the nearest: {nearest} (prompt {text!r})")


def latent_frames(frames: int) -> int:
    """Pixel frames ``8k + 1`` -> latent frames ``k + 1``."""
    return (frames - 1) // TEMPORAL + 1


def resized(
    template: Batch, key: str, width: int | None = None, height: int | None = None, frames: int | None = None
) -> Batch:
    """``template`` (one sample) at ``width x height``, ``frames`` long (pixels; ``None``: the template's).

    The clips become zeros of the new grid (the prompt's media fill them after); a reference the template has
    at its clip's size follows it, one downscaled ``d`` times stays ``d`` times smaller, a shorter one keeps
    its frames; masks are resized to the new grid (nearest cell); the audio and its mask last as long as the
    new frames. ``key`` (``prompts[i]``) names the prompt in a size the reference cannot follow.
    """
    if width is None and height is None and frames is None:
        return template
    changed: dict[str, Any] = {}
    video = template.video_latents
    if video is not None:
        _, _, f, h, w = video.latents.shape
        grid = (
            f if frames is None else latent_frames(frames),
            h if height is None else height // SPATIAL,
            w if width is None else width // SPATIAL,
        )
        changed["video_latents"] = zeros(video, grid)
        if template.reference_latents is not None:
            asked = {"frames": frames, "height": height, "width": width}
            ref_grid = reference_grid(template.reference_latents.latents.shape[2:], (f, h, w), grid, asked, key)
            changed["reference_latents"] = zeros(template.reference_latents, ref_grid)
        if template.mask_latents is not None:
            mask = template.mask_latents
            changed["mask_latents"] = replace(mask, latents=nearest(mask.latents, grid))
        if template.video_masks is not None:
            changed["video_masks"] = nearest(template.video_masks[:, None], grid)[:, 0]
    if frames is not None:
        fps = float(video.fps[0]) if video is not None and video.fps is not None else DEFAULT_FPS
        steps = audio_steps(frames, fps)
        for role in ("audio_latents", "reference_audio_latents"):
            if (clip := getattr(template, role)) is not None:
                changed[role] = zeros(clip, (steps, clip.latents.shape[3]))
        if template.audio_masks is not None:
            changed["audio_masks"] = nearest(template.audio_masks[:, None], (steps,))[:, 0]
    return replace(template, **changed)


def reference_grid(
    reference: tuple[int, ...],
    clip: tuple[int, int, int],
    grid: tuple[int, int, int],
    asked: dict[str, int | None],
    key: str,
) -> tuple[int, int, int]:
    """The reference's new grid: each axis where the template's reference matches its clip follows the clip;
    a spatial axis downscaled ``d`` times stays so (the asked size must then divide by ``32 * d``); a shorter
    reference keeps its frames."""
    out = []
    for axis, name in enumerate(("frames", "height", "width")):
        ref, own, new = reference[axis], clip[axis], grid[axis]
        if ref == own:
            out.append(new)
        elif axis == 0 or own % ref:  # a shorter reference, or one of no whole scale: kept as it is
            out.append(ref)
        elif new % (factor := own // ref):
            allowed = f"a multiple of {SPATIAL * factor}: the IC-LoRA reference is {factor} times smaller than the clip"
            raise ConfigError(f"{key}.{name}", asked[name], allowed)
        else:
            out.append(new // factor)
    return tuple(out)


def zeros(clip: Clip, grid: tuple[int, ...]) -> Clip:
    """``clip`` as zeros ``[1, C, *grid]`` (its frame rate kept)."""
    latents = clip.latents
    return replace(clip, latents=latents.new_zeros(*latents.shape[:2], *grid))


def nearest(values: Tensor, grid: tuple[int, ...]) -> Tensor:
    """``values [B, C, *old]`` resized to ``[B, C, *grid]`` by the nearest cell, in their own dtype."""
    if tuple(values.shape[2:]) == tuple(grid):
        return values
    return torch.nn.functional.interpolate(values.float(), size=grid, mode="nearest").to(values.dtype)
