"""What the transformer gets, per stream, and what its outputs are scored against: the model-input types."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ltx_core.model.transformer.modality import Modality
from torch import Tensor

from ltxtune.diffusion import flow
from ltxtune.diffusion.tokens import AudioTokens, VideoTokens

MODALITIES = ("video", "audio")  # the transformer's two streams, in the order it takes them


@dataclass(frozen=True)
class ModalityInputs:
    """One stream of ``ModelInputs``: its ``Modality``, and its target and loss mask when it is generated.

    ``grid`` is the clean target's token view (``VideoTokens`` / ``AudioTokens``: frames, height, width,
    fps) when the strategy gave it; the sequence ends with those tokens (references come first).
    """

    name: str
    modality: Modality
    target: Tensor | None = None
    loss_mask: Tensor | None = None
    grid: VideoTokens | AudioTokens | None = None

    @property
    def generated(self) -> bool:
        """False for a frozen condition: seen by the model, never scored or denoised."""
        return self.target is not None

    @property
    def tokens(self) -> int:
        """Tokens in the batch (every sample, conditions included)."""
        return self.modality.latent.shape[0] * self.modality.latent.shape[1]

    def condition_tokens(self) -> Tensor:
        """How many tokens are given as conditions (clean, timestep 0), as a 0-d tensor (no host sync)."""
        return (self.modality.timesteps == 0).sum()

    def loss(self, pred: Tensor) -> Tensor:
        """Per-sample masked flow-matching loss ``[B]`` of ``pred`` against the target."""
        return flow.masked_loss(pred, self.target, self.loss_mask)


@dataclass(frozen=True)
class ModelInputs:
    """What the transformer gets, and what its outputs are scored against.

    Targets are ``[B, T, 128]`` velocities; loss masks are boolean ``[B, T]`` (True = scored). A modality
    with no target is a frozen condition: it is seen by the model but never scored. ``streams()`` gives the
    same facts grouped per modality, for code that treats video and audio alike.
    """

    video: Modality | None
    audio: Modality | None
    video_targets: Tensor | None = None
    audio_targets: Tensor | None = None
    video_loss_mask: Tensor | None = None
    audio_loss_mask: Tensor | None = None
    video_grid: VideoTokens | None = None
    audio_grid: AudioTokens | None = None

    @classmethod
    def of(cls, *streams: ModalityInputs) -> ModelInputs:
        """Inputs from per-modality parts; a modality not given is absent."""
        values: dict[str, Any] = {"video": None, "audio": None}
        for stream in streams:
            values[stream.name] = stream.modality
            values[f"{stream.name}_targets"], values[f"{stream.name}_loss_mask"] = stream.target, stream.loss_mask
            values[f"{stream.name}_grid"] = stream.grid
        return cls(**values)

    def stream(self, name: str) -> ModalityInputs | None:
        modality = getattr(self, name)
        if modality is None:
            return None
        target, mask, grid = (getattr(self, f"{name}_{part}") for part in ("targets", "loss_mask", "grid"))
        return ModalityInputs(name, modality, target, mask, grid)

    def streams(self) -> list[ModalityInputs]:
        """The modalities present, video first."""
        return [s for name in MODALITIES if (s := self.stream(name)) is not None]

    def generated(self) -> list[ModalityInputs]:
        """The modalities with a target: what is scored in training and denoised in sampling."""
        return [s for s in self.streams() if s.generated]

    def with_modalities(self, modalities: dict[str, Modality]) -> ModelInputs:
        """A copy with the given streams' ``Modality`` replaced (targets, masks and grids kept)."""
        return replace(self, **modalities)

    def with_context_of(self, other: ModelInputs, names: list[str] | None = None) -> ModelInputs:
        """A copy whose streams (the ``names`` ones; default every one) attend to ``other``'s text context
        (another prompt's; for guidance)."""
        changed = {}
        for stream in self.streams():
            if names is not None and stream.name not in names:
                continue
            context = other.stream(stream.name).modality
            changed[stream.name] = replace(stream.modality, context=context.context, context_mask=context.context_mask)
        return self.with_modalities(changed)
