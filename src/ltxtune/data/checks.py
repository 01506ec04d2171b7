"""What each sample file must hold, checked as it is read, so that a bad file is named with what was found
and what was expected instead of failing deep in the model.

The layout: latents files ``{"latents": [128, F, H, W]}`` (video) or ``[8, T, 16]`` (audio) with an optional
grid header (``num_frames``, ``height``, ``width``; ``num_time_steps``), text features under ``conditions/``
(``video_prompt_embeds`` / ``audio_prompt_embeds`` ``[L, D]``, ``prompt_attention_mask [L]``), and mask files
``{"mask": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.batch import AUDIO_TEXT_KEY, TEXT_MASK_KEY, VIDEO_TEXT_KEY
from ltxtune.data.needs import TRACK_ROLES, DataNeeds
from ltxtune.errors import DataError

VIDEO_CHANNELS = 128
AUDIO_CHANNELS, AUDIO_BINS = 8, 16
TEXT_KEYS = (VIDEO_TEXT_KEY, AUDIO_TEXT_KEY, TEXT_MASK_KEY)
MASK_ROLES = tuple(roles.mask for roles in TRACK_ROLES.values())
_VIDEO_HEADER = ("num_frames", "height", "width")


@dataclass(frozen=True)
class SampleExpectations:
    """What the strategy and the model need of every sample: the roles the strategy reads (``needs``), and the
    widths of the model's text features (``text_width``; the audio features' own width, ``audio_text_width``,
    when it differs as in LTX-2.3; ``None``: not checked).

    Without audio (``needs.has_audio`` false), text features need no ``audio_prompt_embeds`` (a video-only
    checkpoint's have none), and those present are not loaded, so that batches of both kinds collate alike.
    """

    needs: DataNeeds
    text_width: int | None = None
    audio_text_width: int | None = None

    def width(self, key: str) -> int | None:
        if key == AUDIO_TEXT_KEY and self.audio_text_width is not None:
            return self.audio_text_width
        return self.text_width

    def check(self, path: Path, role: str, data: dict[str, Any]) -> None:
        """Raise ``DataError`` naming ``path`` when its contents cannot fill ``role`` (``extra`` is not checked)."""
        if role == "text":
            problem = self.text_problem(data)
        elif role in MASK_ROLES:
            problem = mask_problem(data)
        elif role == "mask_latents":
            problem = latents_problem(data) or mask_fraction_problem(data["latents"])
        else:
            problem = latents_problem(data)
        if problem is not None:
            raise DataError(f"{path}: {problem}")

    def text_keys(self) -> tuple[str, ...]:
        if not self.needs.has_audio:
            return tuple(k for k in TEXT_KEYS if k != AUDIO_TEXT_KEY)
        return TEXT_KEYS

    def text_problem(self, data: dict[str, Any]) -> str | None:
        if missing := [k for k in self.text_keys() if not isinstance(data.get(k), torch.Tensor)]:
            found = f"found keys: {', '.join(sorted(data)) or 'none'}"
            if missing == [AUDIO_TEXT_KEY]:
                audio = ", ".join(d + "/" for d in sorted(self.needs.audio_dirs))
                return (
                    f"no {AUDIO_TEXT_KEY} tensor ({found}), which the audio track ({audio}) attends to: text "
                    "features without it (a video-only checkpoint's) train only strategies without audio"
                )
            return f"no {', '.join(missing)} tensor ({found})"
        mask = data[TEXT_MASK_KEY]
        if mask.dim() != 1:
            return f"prompt_attention_mask has shape {tuple(mask.shape)}, expected [L] (one value per text token)"
        for key in (k for k in self.text_keys() if k != TEXT_MASK_KEY):
            embeds = data[key]
            if not embeds.is_floating_point():
                return f"{key} is {embeds.dtype}, expected a floating-point tensor"
            if embeds.dim() != 2 or embeds.shape[0] != mask.shape[0]:
                return (
                    f"{key} has shape {tuple(embeds.shape)}, expected [{mask.shape[0]}, D] (L from the attention mask)"
                )
            wanted = self.width(key)
            if wanted is not None and embeds.shape[1] != wanted:
                knob = "model.audio_caption_channels" if key == AUDIO_TEXT_KEY else "model.caption_channels"
                return (
                    f"{key} is {embeds.shape[1]} wide, the model takes {wanted} "
                    f"({knob}): the features come from another text encoder"
                )
        return None


def mask_problem(data: dict[str, Any]) -> str | None:
    mask = data.get("mask")
    if not isinstance(mask, torch.Tensor):
        return f"no 'mask' tensor (found keys: {', '.join(sorted(data)) or 'none'})"
    if mask.numel() and (float(mask.min()) < 0.0 or float(mask.max()) > 1.0):
        return (
            f"mask values range {float(mask.min()):.3g}..{float(mask.max()):.3g}, expected each latent cell's "
            "fraction kept as a condition, in [0, 1] (1 = given)"
        )
    return None


def mask_fraction_problem(cells: Tensor) -> str | None:
    """``mask_latents/`` hold, per latent cell, the fraction of it to generate: in [0, 1], alike in every channel.
    The VAE latents of a mask video (what older preprocessing and ltx-trainer's inpainting guide wrote) are not."""
    lo, hi = float(cells.min()), float(cells.max())
    spread = float((cells.amax(dim=0) - cells.amin(dim=0)).max())
    if lo >= 0.0 and hi <= 1.0 and spread == 0.0:
        return None
    return (
        f"values range {lo:.3g}..{hi:.3g} and differ between channels by up to {spread:.3g}: these look like VAE "
        "latents of a mask video, which no threshold can read; mask_latents/ must hold each latent cell's fraction "
        "to generate (0..1, the same in every channel). Preprocess the masks again with ltxtune "
        "(python preprocess.py input=<dataset file> ..., the mask_path column) to write them"
    )


def latents_problem(data: dict[str, Any]) -> str | None:
    if "latents" not in data:
        return f"no 'latents' tensor (found keys: {', '.join(sorted(data)) or 'none'})"
    latents = data["latents"]
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        found = latents.dtype if isinstance(latents, torch.Tensor) else type(latents).__name__
        return f"latents is {found}, expected a floating-point tensor"
    if latents.dim() == 4:
        return _video_problem(data, tuple(latents.shape))
    if latents.dim() == 3:
        return _audio_problem(data, tuple(latents.shape))
    return f"latents have shape {list(latents.shape)}, expected [128, F, H, W] (video) or [8, T, 16] (audio)"


def _video_problem(data: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    if shape[0] != VIDEO_CHANNELS:
        return f"video latents have {shape[0]} channels, expected {VIDEO_CHANNELS} ([128, F, H, W])"
    stated = {k: int(data[k]) for k in _VIDEO_HEADER if k in data}
    actual = dict(zip(_VIDEO_HEADER, shape[1:], strict=True))
    if wrong := [k for k in stated if stated[k] != actual[k]]:
        told = ", ".join(f"{k}={stated[k]}" for k in wrong)
        return f"the header says {told} but the latents are {list(shape)} ([128, F, H, W])"
    return None


def _audio_problem(data: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    if shape[0] != AUDIO_CHANNELS or shape[2] != AUDIO_BINS:
        return f"audio latents have shape {list(shape)}, expected [{AUDIO_CHANNELS}, T, {AUDIO_BINS}]"
    if "num_time_steps" in data and int(data["num_time_steps"]) != shape[1]:
        return f"the header says num_time_steps={int(data['num_time_steps'])} but the latents have {shape[1]}"
    return None
