"""The strategy contract and the helpers every strategy composes (model inputs, first-frame draws, checks).

``VideoTokens`` and ``AudioTokens`` live in ``ltxtune.diffusion.tokens``; they are importable from here too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from ltx_core.model.transformer.modality import Modality
from torch import Tensor

from ltxtune.data.batch import Batch
from ltxtune.diffusion import flow
from ltxtune.diffusion.samplers import ConstantSampler, TimestepSampler
from ltxtune.diffusion.tokens import AudioTokens, VideoTokens
from ltxtune.errors import check_range


@dataclass(frozen=True)
class ModelInputs:
    """What the transformer gets, and what its outputs are scored against.

    Targets are ``[B, T, 128]`` velocities; loss masks are boolean ``[B, T]`` (True = scored). A modality
    with no target is a frozen condition: it is seen by the model but never scored.
    """

    video: Modality | None
    audio: Modality | None
    video_targets: Tensor | None = None
    audio_targets: Tensor | None = None
    video_loss_mask: Tensor | None = None
    audio_loss_mask: Tensor | None = None


def video_modality(
    noised: flow.NoisedTokens, pos: Tensor, conditions: dict[str, Tensor], enabled: bool = True
) -> Modality:
    return Modality(
        latent=noised.latent,
        sigma=noised.sigma,
        timesteps=noised.timesteps,
        positions=pos,
        context=conditions["video_prompt_embeds"],
        context_mask=conditions["prompt_attention_mask"].long(),
        enabled=enabled,
    )


def audio_modality(noised: flow.NoisedTokens, pos: Tensor, conditions: dict[str, Tensor]) -> Modality:
    return Modality(
        latent=noised.latent,
        sigma=noised.sigma,
        timesteps=noised.timesteps,
        positions=pos,
        context=conditions["audio_prompt_embeds"],
        context_mask=conditions["prompt_attention_mask"].long(),
    )


def first_frame_mask(
    batch: int, seq_len: int, frame_tokens: int, p: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """``[B, T]`` with the first ``frame_tokens`` True for samples drawn with probability ``p`` (per sample).

    Left all False when the clip is a single frame: conditioning on the whole clip leaves nothing to learn.
    """
    mask = torch.zeros(batch, seq_len, dtype=torch.bool, device=device)
    draw = torch.rand(batch, generator=generator, device=device) < p
    if frame_tokens < seq_len:
        mask[:, :frame_tokens] = draw.view(-1, 1)
    return mask


def check_probability(key: str, value: float) -> None:
    check_range(key, value, 0.0, 1.0)


class TrainingStrategy(ABC):
    """A training mode. Subclasses declare their data, build model inputs, and may change the loss.

    Randomness (sigma, noise, condition draws) comes only from the ``generator`` passed in, so a run is
    reproducible and each rank draws its own values.
    """

    @abstractmethod
    def get_data_sources(self) -> dict[str, str]:
        """Directories under ``data.root`` -> the batch key their files appear under."""

    @abstractmethod
    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs: ...

    def modality_losses(
        self, video_pred: Tensor | None, audio_pred: Tensor | None, inputs: ModelInputs
    ) -> dict[str, Tensor]:
        """Per-sample loss ``[B]`` of each scored modality (``video``, ``audio``)."""
        losses = {}
        if inputs.video_targets is not None:
            losses["video"] = flow.masked_loss(video_pred, inputs.video_targets, inputs.video_loss_mask)
        if inputs.audio_targets is not None:
            losses["audio"] = flow.masked_loss(audio_pred, inputs.audio_targets, inputs.audio_loss_mask)
        return losses

    def compute_loss(self, video_pred: Tensor | None, audio_pred: Tensor | None, inputs: ModelInputs) -> Tensor:
        """Per-sample training loss ``[B]``: the sum over scored modalities. The loop takes the mean."""
        return sum(self.modality_losses(video_pred, audio_pred, inputs).values())

    def get_checkpoint_metadata(self) -> dict[str, Any]:
        """JSON-serializable facts inference needs, written into the LoRA file."""
        return {}

    def check_data(self, batch: Batch) -> None:
        """Refuse data this configuration cannot train on, before any model is built.

        Shape-dependent settings (a temporal boundary against the clip's frames, a crop box against the
        frame, reference scale factors) are checked where the inputs are prepared, so the default prepares
        ``batch`` once, at a fixed sigma, and drops the result. Raises ``ConfigError`` or ``DataError``.
        """
        device = next(v.device for f in batch.sources.values() for v in f.values() if isinstance(v, Tensor))
        generator = torch.Generator(device=device).manual_seed(0)
        self.prepare_training_inputs(batch, ConstantSampler(0.5), generator)


__all__ = [
    "AudioTokens",
    "ModelInputs",
    "TrainingStrategy",
    "VideoTokens",
    "audio_modality",
    "check_probability",
    "first_frame_mask",
    "video_modality",
]
