"""The strategy contract and the helpers every strategy composes (tokens, positions, text context)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from ltx_core.model.transformer.modality import Modality
from torch import Tensor

from ltxtune import flow, positions
from ltxtune.data.batch import Batch
from ltxtune.errors import DataError, check_range
from ltxtune.samplers import ConstantSampler, TimestepSampler


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


@dataclass(frozen=True)
class VideoTokens:
    """Patchified video latents ``[B, F*H*W, 128]`` with their latent grid and per-sample fps ``[B]``."""

    tokens: Tensor
    frames: int
    height: int
    width: int
    fps: Tensor

    @classmethod
    def from_source(cls, source: dict[str, Any]) -> VideoTokens:
        latents = source["latents"]
        _, _, f, h, w = latents.shape
        fps = source.get("fps")
        if fps is None:
            fps = torch.full((latents.shape[0],), positions.DEFAULT_FPS)
        return cls(positions.patchify_video(latents), f, h, w, fps.float())

    time_unit: ClassVar[str] = "latent frames"

    def positions(self) -> Tensor:
        return positions.video_positions(self.frames, self.height, self.width, self.fps, self.tokens.device)

    def reference_scale(self, ref: VideoTokens) -> tuple[int, int]:
        """Integer ``(spatial, temporal)`` factors from the grid of reference latents ``ref`` to this one.

        Spatial: target size / reference size, equal on both axes. Temporal: latent frame groups
        ``(F - 1) / (Fr - 1)`` (the first latent frame holds a single pixel frame); 1 for equal lengths or
        a one-frame reference. Raises ``DataError`` when the shapes are not such multiples.
        """
        h, w = self.height, self.width
        if h % ref.height or w % ref.width or h // ref.height != w // ref.width:
            raise DataError(
                f"reference latents are {ref.height}x{ref.width} cells and the target {h}x{w}: the target must be "
                "the reference times one integer factor on both axes"
            )
        groups, ref_groups = self.frames - 1, ref.frames - 1
        if ref_groups == 0 or groups == ref_groups:
            return h // ref.height, 1
        if groups < ref_groups or groups % ref_groups:
            raise DataError(
                f"reference latents have {ref.frames} frames and the target {self.frames}: (target - 1) must be "
                "(reference - 1) times an integer"
            )
        return h // ref.height, groups // ref_groups

    def reference_positions(self, ref: VideoTokens) -> Tensor:
        """Positions ``[B, 3, R, 2]`` of reference tokens ``ref`` placed on this clip's pixel grid and timeline.

        Height and width grow by the spatial factor, so a reference cell covers the target pixels it was
        downscaled from. With a temporal factor S, reference times (at the reference's own fps) move back by
        ``(S - 1) / fps`` of the target, clamped at 0, so that both clips end together.
        """
        spatial, temporal = self.reference_scale(ref)
        pos = ref.positions()
        pos[:, 1:] = pos[:, 1:] * spatial
        if temporal != 1:
            shift = (temporal - 1) / self.fps.to(device=pos.device, dtype=pos.dtype).view(-1, 1, 1)
            pos[:, 0] = (pos[:, 0] - shift).clamp_min(0)
        return pos


@dataclass(frozen=True)
class AudioTokens:
    """Patchified audio latents ``[B, T, 128]``; ``frames`` is T (latent steps, 25 per second).

    Shares ``VideoTokens``' grid attributes (one token per time step: ``height == width == 1``) so that
    temporal conditions address both modalities alike.
    """

    tokens: Tensor
    frames: int
    height: ClassVar[int] = 1
    width: ClassVar[int] = 1
    time_unit: ClassVar[str] = "audio latent steps"

    @classmethod
    def from_source(cls, source: dict[str, Any]) -> AudioTokens:
        tokens = positions.patchify_audio(source["latents"])
        return cls(tokens, tokens.shape[1])

    def positions(self) -> Tensor:
        return positions.audio_positions(self.frames, self.tokens.shape[0], self.tokens.device)

    def reference_scale(self, ref: AudioTokens) -> tuple[int, int]:
        return 1, 1

    def reference_positions(self, ref: AudioTokens) -> Tensor:
        """Audio references keep their own timeline: ``[B, 1, R, 2]``."""
        return ref.positions()


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
