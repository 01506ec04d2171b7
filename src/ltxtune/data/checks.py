"""What each sample file must hold, checked as it is read, so that a bad file is named with what was found
and what was expected instead of failing deep in the model.

The layout is SPEC's: latents files ``{"latents": [128, F, H, W]}`` (video) or ``[8, T, 16]`` (audio) with an
optional grid header (``num_frames``, ``height``, ``width``; ``num_time_steps``), text features under
``conditions/`` (``video_prompt_embeds`` / ``audio_prompt_embeds`` ``[L, D]``, ``prompt_attention_mask [L]``),
and mask files ``{"mask": ...}``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ltxtune.errors import DataError

VIDEO_CHANNELS = 128
AUDIO_CHANNELS, AUDIO_BINS = 8, 16
TEXT_KEYS = ("video_prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask")
AUDIO_TEXT_KEY = "audio_prompt_embeds"
_VIDEO_HEADER = ("num_frames", "height", "width")


@dataclass(frozen=True)
class SampleExpectations:
    """What the model needs of every sample: the widths of its text features (``caption_channels``; the audio
    features' own width, ``audio_caption_channels``, when it differs as in LTX-2.3), and the directories the
    strategy reads audio from (``audio_dirs``; empty for a strategy without audio, ``None`` when not known:
    then every text feature is required and kept).

    Without audio, text features need no ``audio_prompt_embeds`` (a video-only checkpoint's have none), and
    those present are dropped as samples are read, so that batches of both kinds collate alike.
    """

    text_width: int | None = None
    audio_dirs: frozenset[str] | None = None
    audio_text_width: int | None = None

    @classmethod
    def of(cls, model: Any, audio_sources: Collection[str] | None = None) -> SampleExpectations:
        """The expectations of a ``ModelSpec`` (typed ``Any``: this module stays free of the model's imports)
        and a strategy (``get_audio_sources()``)."""
        video, audio = model.text_widths
        dirs = None if audio_sources is None else frozenset(audio_sources)
        return cls(text_width=video, audio_dirs=dirs, audio_text_width=audio)

    def width(self, key: str) -> int | None:
        if key == "audio_prompt_embeds" and self.audio_text_width is not None:
            return self.audio_text_width
        return self.text_width

    def check(self, path: Path, batch_key: str, data: dict[str, Any]) -> None:
        """Raise ``DataError`` naming ``path`` when its contents cannot be trained on."""
        problem = self.text_problem(data) if batch_key == "conditions" else self.other_problem(data)
        if problem is not None:
            raise DataError(f"{path}: {problem}")

    def trim(self, batch_key: str, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` without the text features the strategy never reads (the audio ones, when it has no audio)."""
        if batch_key == "conditions" and self.audio_dirs == frozenset():
            data.pop(AUDIO_TEXT_KEY, None)
        return data

    def text_keys(self) -> tuple[str, ...]:
        if self.audio_dirs == frozenset():
            return tuple(k for k in TEXT_KEYS if k != AUDIO_TEXT_KEY)
        return TEXT_KEYS

    def text_problem(self, data: dict[str, Any]) -> str | None:
        if missing := [k for k in self.text_keys() if not isinstance(data.get(k), torch.Tensor)]:
            found = f"found keys: {', '.join(sorted(data)) or 'none'}"
            if missing == [AUDIO_TEXT_KEY]:
                audio = ", ".join(d + "/" for d in sorted(self.audio_dirs or ()))
                return (
                    f"no {AUDIO_TEXT_KEY} tensor ({found}), which the audio track ({audio}) attends to: text "
                    "features without it (a video-only checkpoint's) train only strategies without audio"
                )
            return f"no {', '.join(missing)} tensor ({found})"
        mask = data["prompt_attention_mask"]
        if mask.dim() != 1:
            return f"prompt_attention_mask has shape {tuple(mask.shape)}, expected [L] (one value per text token)"
        for key in (k for k in self.text_keys() if k != "prompt_attention_mask"):
            embeds = data[key]
            if not embeds.is_floating_point():
                return f"{key} is {embeds.dtype}, expected a floating-point tensor"
            if embeds.dim() != 2 or embeds.shape[0] != mask.shape[0]:
                return (
                    f"{key} has shape {tuple(embeds.shape)}, expected [{mask.shape[0]}, D] (L from the attention mask)"
                )
            wanted = self.width(key)
            if wanted is not None and embeds.shape[1] != wanted:
                knob = "model.audio_caption_channels" if key == "audio_prompt_embeds" else "model.caption_channels"
                return (
                    f"{key} is {embeds.shape[1]} wide, the model takes {wanted} "
                    f"({knob}): the features come from another text encoder"
                )
        return None

    def other_problem(self, data: dict[str, Any]) -> str | None:
        if "latents" not in data:
            if isinstance(data.get("mask"), torch.Tensor):
                return None
            return f"no 'latents' tensor (found keys: {', '.join(sorted(data)) or 'none'})"
        latents = data["latents"]
        if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
            found = latents.dtype if isinstance(latents, torch.Tensor) else type(latents).__name__
            return f"latents is {found}, expected a floating-point tensor"
        shape = tuple(latents.shape)
        if latents.dim() == 4:
            if shape[0] != VIDEO_CHANNELS:
                return f"video latents have {shape[0]} channels, expected {VIDEO_CHANNELS} ([128, F, H, W])"
            header = {k: data[k] for k in _VIDEO_HEADER if k in data}
            stated = {k: int(v) for k, v in header.items()}
            actual = dict(zip(_VIDEO_HEADER, shape[1:], strict=True))
            if wrong := [k for k in stated if stated[k] != actual[k]]:
                told = ", ".join(f"{k}={stated[k]}" for k in wrong)
                return f"the header says {told} but the latents are {list(shape)} ([128, F, H, W])"
            return None
        if latents.dim() == 3:
            if shape[0] != AUDIO_CHANNELS or shape[2] != AUDIO_BINS:
                return f"audio latents have shape {list(shape)}, expected [{AUDIO_CHANNELS}, T, {AUDIO_BINS}]"
            if "num_time_steps" in data and int(data["num_time_steps"]) != shape[1]:
                return f"the header says num_time_steps={int(data['num_time_steps'])} but the latents have {shape[1]}"
            return None
        return f"latents have shape {list(shape)}, expected [128, F, H, W] (video) or [8, T, 16] (audio)"
