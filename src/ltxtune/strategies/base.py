"""The strategy contract and the helpers every strategy composes (modalities, first-frame draws, checks)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ltxtune.data.batch import Batch, TextFeatures
from ltxtune.data.needs import DataNeeds
from ltxtune.diffusion import flow
from ltxtune.diffusion.inputs import Modality, ModelInputs
from ltxtune.diffusion.samplers import ConstantSampler, TimestepSampler
from ltxtune.errors import check_range


def video_modality(noised: flow.NoisedTokens, pos: Tensor, text: TextFeatures, enabled: bool = True) -> Modality:
    """The video stream: ``noised`` tokens at positions ``pos`` ``[B, 3, T, 2]``, attending to the video text."""
    return Modality(
        latent=noised.latent,
        sigma=noised.sigma,
        timesteps=noised.timesteps,
        positions=pos,
        context=text.video_embeds,
        context_mask=text.attention_mask.long(),  # ltx-core fails on a bool mask
        enabled=enabled,
    )


def audio_modality(noised: flow.NoisedTokens, pos: Tensor, text: TextFeatures) -> Modality:
    """The audio stream: ``noised`` tokens at positions ``pos`` ``[B, 1, T, 2]``, attending to the audio text."""
    return Modality(
        latent=noised.latent,
        sigma=noised.sigma,
        timesteps=noised.timesteps,
        positions=pos,
        context=text.audio_embeds,
        context_mask=text.attention_mask.long(),
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


@dataclass(frozen=True)
class MaskCoverage:
    """How a mask a strategy reads splits one batch's tokens under its threshold.

    ``key``: the threshold's key under ``strategy``; ``directory``: where the masks are; ``generated``: per sample,
    the fraction of the track's tokens to generate ``[B]``; ``values``: the lowest and highest mask value seen;
    ``above_generates``: whether a value above the threshold means "generate" (inpainting's fractions) or "given"
    (per-cell keep masks).
    """

    key: str
    threshold: float
    directory: str
    generated: Tensor
    values: tuple[float, float]
    above_generates: bool


@dataclass(frozen=True)
class Given:
    """A part of the clip that a strategy gives the model clean instead of generating it: a first frame, a
    reference, a frozen track. A validation prompt supplies it from its media, or goes without it.

    Args:
        key: which part, unique within the strategy (``video.conditions[0]``); ``TrainingStrategy.with_givens``
            takes these.
        role: the batch role its clean tokens come from (a ``DataNeeds`` field: ``video_latents`` for a part of
            the clip itself, ``reference_latents`` for an IC-LoRA reference, ...).
        what: what it is, in words (``the first frame``), for messages.
        probability: how often training gives it; 1: always, so a prompt without it cannot be rendered.
        setting: the strategy key that sets ``probability`` (``first_frame_p``); ``None``: none does.
        one_frame: it is the clip's first frame only, so an image supplies all of it.
    """

    key: str
    role: str
    what: str
    probability: float
    setting: str | None = None
    one_frame: bool = False


class TrainingStrategy(ABC):
    """A training mode. Subclasses declare their data, build model inputs, and may change the loss.

    Randomness (sigma, noise, condition draws) comes only from the ``generator`` passed in, so a run is
    reproducible and each rank draws its own values. ``TRAINING_KNOBS`` names the constructor arguments that
    only shape how training draws its examples: validation holds them at their defaults
    (``ltxtune.strategies.evaluation``), so that they do not move the objective a sweep compares.
    """

    TRAINING_KNOBS: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def data_needs(self) -> DataNeeds:
        """The directory under ``data.root`` of each role the strategy reads (what the batch holds).

        The dataset reads and checks those directories; with ``audio_latents`` the strategy feeds audio: text
        features then need ``audio_prompt_embeds``, and a sample without an audio file is a clip without sound
        (left out and counted, not a broken dataset).
        """

    @abstractmethod
    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs: ...

    def modality_losses(
        self, video_pred: Tensor | None, audio_pred: Tensor | None, inputs: ModelInputs
    ) -> dict[str, Tensor]:
        """Per-sample loss ``[B]`` of each scored modality (``video``, ``audio``)."""
        preds = {"video": video_pred, "audio": audio_pred}
        return {stream.name: stream.loss(preds[stream.name]) for stream in inputs.generated()}

    def compute_loss(self, video_pred: Tensor | None, audio_pred: Tensor | None, inputs: ModelInputs) -> Tensor:
        """Per-sample training loss ``[B]``: the sum over scored modalities. The loop takes the mean."""
        return sum(self.modality_losses(video_pred, audio_pred, inputs).values())

    def get_checkpoint_metadata(self) -> dict[str, Any]:
        """JSON-serializable facts inference needs, written into the LoRA file."""
        return {}

    def mask_coverage(self, batch: Batch) -> list[MaskCoverage]:
        """For each mask that chooses which tokens are generated, how it splits ``batch`` under its threshold, so
        that a threshold that leaves nothing to generate (or nothing given) is caught before training. Strategies
        that choose tokens without masks have none."""
        return []

    def givens(self) -> tuple[Given, ...] | None:
        """What the strategy gives clean (conditions, frozen tracks), for validation prompts to supply.

        ``None`` (the default): not declared, so a prompt's media fill the roles the strategy reads and its
        conditions draw as they do for a held-out sample. A strategy that declares them (every built-in one)
        gets its prompts checked before training: media it has no use for and prompts without a part it
        always gives are refused, and each prompt is rendered with exactly the parts its media supply.
        """
        return None

    def with_givens(self, keys: Collection[str]) -> TrainingStrategy:
        """This strategy giving the ``givens()`` in ``keys`` always and the others never (a prompt's clip)."""
        return self

    def check_data(self, batch: Batch) -> None:
        """Refuse data this configuration cannot train on, before any model is built.

        Shape-dependent settings (a temporal boundary against the clip's frames, a crop box against the
        frame, reference scale factors) are checked where the inputs are prepared, so the default prepares
        ``batch`` once, at a fixed sigma, and drops the result. Raises ``ConfigError`` or ``DataError``.
        """
        generator = torch.Generator(device=batch.device).manual_seed(0)
        self.prepare_training_inputs(batch, ConstantSampler(0.5), generator)
