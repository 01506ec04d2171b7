"""Sampling a validation clip the way its strategy trains: its conditions, its seed, its guidance.

Conditioning is whatever the strategy builds: ``start_inputs`` asks ``prepare_training_inputs`` for the
inputs at sigma 1, where every token the strategy generates is pure noise and every condition (a first
frame, a reference clip, the kept region of a mask, a frozen modality) is clean at timestep 0; the denoising
loop (``ltxtune.diffusion.sampling.sample``) keeps those as they are. Any strategy, a user's own included, is
sampled the way it was trained without code of its own here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ltxtune.data.batch import Batch, TextFeatures
from ltxtune.diffusion import positions
from ltxtune.diffusion.guidance import Guidance
from ltxtune.diffusion.inputs import ModelInputs
from ltxtune.diffusion.positions import DEFAULT_FPS, VIDEO_SCALE
from ltxtune.diffusion.samplers import ConstantSampler
from ltxtune.diffusion.sampling import Sampled, sample
from ltxtune.diffusion.tokens import AudioTokens
from ltxtune.strategies.base import TrainingStrategy, audio_modality
from ltxtune.strategies.conditions import Stream

# Candidate condition draws per sample and the quantile picked from them (see ``start_inputs``).
CONDITION_DRAWS = 64
CONDITION_QUANTILE = 2 / 3


def condition_tokens(inputs: ModelInputs) -> int:
    """How many tokens are given as conditions (timestep 0) across both modalities."""
    return sum(int(stream.condition_tokens()) for stream in inputs.streams())


def _draw(strategy: TrainingStrategy, batch: Batch, seed: int, k: int) -> ModelInputs:
    """Draw ``k`` of ``seed``: the strategy's inputs at sigma 1 from its own generator."""
    generator = torch.Generator(batch.device).manual_seed(seed * CONDITION_DRAWS + k)
    return strategy.prepare_training_inputs(batch, ConstantSampler(1.0), generator)


def representative_draw(strategy: TrainingStrategy, batch: Batch, seed: int) -> int:
    """Which of ``seed``'s ``CONDITION_DRAWS`` draws to sample from (see ``start_inputs``)."""
    counts = sorted((condition_tokens(_draw(strategy, batch, seed, k)), k) for k in range(CONDITION_DRAWS))
    return counts[int(CONDITION_QUANTILE * (CONDITION_DRAWS - 1) + 0.5)][1]


def start_inputs(strategy: TrainingStrategy, batch: Batch, seed: int, draw: int | None = None) -> ModelInputs:
    """The strategy's inputs at sigma 1 for a batch of one: the starting noise and the conditions.

    Conditions are drawn with the probabilities the strategy trains with, so a single draw could leave out
    an image-to-video first frame (drawn for half the samples) or add text-to-video's occasional one.
    Among ``CONDITION_DRAWS`` seeded draws, ordered by how many tokens they condition, the one at the
    ``CONDITION_QUANTILE`` is used: a condition that training applies at least about a third of the time
    is in the videos, a rarer one is not. Deterministic for ``seed``; ``draw`` (from
    ``representative_draw``) skips the search for a batch seen before.
    """
    if draw is None:
        draw = representative_draw(strategy, batch, seed)
    return _draw(strategy, batch, seed, draw)


def negative_context(inputs: ModelInputs, negative: TextFeatures) -> ModelInputs:
    """``inputs`` with each stream attending to the (encoded) negative prompt's features ``[1, L, D]``."""
    changed = {}
    for stream in inputs.streams():
        modality = stream.modality
        b = modality.context.shape[0]
        embeds = negative.video_embeds if stream.name == "video" else negative.audio_embeds
        context = embeds.to(modality.context).expand(b, -1, -1)
        mask = negative.attention_mask.to(modality.context.device).long().expand(b, -1)
        changed[stream.name] = replace(modality, context=context, context_mask=mask)
    return inputs.with_modalities(changed)


@dataclass(frozen=True)
class TargetGrid:
    """The latent grid ``(F, H, W)`` and fps of the clip a video sequence ends with (references come first)."""

    frames: int
    height: int
    width: int
    fps: float

    @property
    def tokens(self) -> int:
        return self.frames * self.height * self.width

    def latents(self, sequence: Tensor) -> Tensor:
        """The clip's last ``F*H*W`` tokens of ``sequence [1, T, 128]`` -> latents ``[1, 128, F, H, W]``."""
        return positions.unpatchify_video(sequence[:, -self.tokens :], self.frames, self.height, self.width)


def video_grid(inputs: ModelInputs, batch: Batch) -> TargetGrid:
    """The generated clip's grid as the strategy gave it (``ModelInputs.video_grid``), else guessed from the batch."""
    grid = inputs.video_grid
    if grid is None:  # a custom strategy that does not say
        return target_grid(batch, inputs.video.latent.shape[1])
    return TargetGrid(grid.frames, grid.height, grid.width, float(grid.fps[0]))


def target_grid(batch: Batch, seq_len: int) -> TargetGrid:
    """The generated clip's grid: the largest video latents of ``batch`` that fit in ``seq_len`` tokens.

    Reference clips are never larger than their target (an integer downscale) and mask latents share its
    grid, so the largest latents in the batch are the target's. Raises ``ValueError`` when none fit.
    """
    grids = []
    for clip in batch.clips().values():
        if clip.latents.dim() == 5:
            _, _, f, h, w = clip.latents.shape
            grids.append(TargetGrid(f, h, w, float(clip.fps[0]) if clip.fps is not None else DEFAULT_FPS))
    fitting = [g for g in grids if g.tokens <= seq_len]
    if not fitting:
        raise ValueError(f"no video latents [B, 128, F, H, W] in the batch fit its {seq_len} video tokens")
    return max(fitting, key=lambda g: g.tokens)


def audio_steps(grid: TargetGrid) -> int:
    """Audio latent steps inference generates beside a clip of ``grid`` (its duration at 25 steps a second)."""
    from ltx_core.types import AudioLatentShape, VideoPixelShape

    frames = VIDEO_SCALE.time * (grid.frames - 1) + 1
    shape = VideoPixelShape(batch=1, frames=frames, height=grid.height, width=grid.width, fps=grid.fps)
    return AudioLatentShape.from_video_pixel_shape(shape).frames


def with_inference_audio(inputs: ModelInputs, text: TextFeatures, grid: TargetGrid, seed: int) -> ModelInputs:
    """``inputs`` of a video-only mode with the audio track inference denoises beside the video: noise for the
    clip's duration, attending to the prompt's audio features ``text.audio_embeds`` (context ``[1, L, D]``)."""
    video = inputs.video
    generator = torch.Generator(video.latent.device).manual_seed(seed)
    silence = torch.zeros(1, audio_steps(grid), video.latent.shape[-1], device=video.latent.device)
    one = torch.ones(1, device=video.latent.device)
    stream = Stream.generated(AudioTokens(silence, silence.shape[1]), one, generator)
    audio = stream.inputs("audio", audio_modality(stream.noised, stream.positions, text))
    return ModelInputs.of(*inputs.streams(), audio)


def has_audio_stream(transformer: nn.Module) -> bool:
    """Whether the transformer has LTX-2's audio stream (a video-only checkpoint has not)."""
    return hasattr(transformer, "audio_patchify_proj")


@dataclass(frozen=True)
class SampledClip:
    """One sampled clip: the denoised sequences, the inputs they started from (with the audio track added
    for a video-only mode), the video clip's grid (none for an audio-only mode)."""

    sampled: Sampled
    inputs: ModelInputs
    grid: TargetGrid | None


class ClipSampler:
    """Samples each validation clip alike at every validation: clip i from seed ``seed + i``, with the same
    representative condition draw (searched once per sample and seed), in ``num_steps`` guided Euler steps."""

    def __init__(self, num_steps: int, guidance: Guidance, seed: int) -> None:
        self.num_steps, self.guidance, self.seed = num_steps, guidance, seed
        self._draws: dict[tuple[str, int], int] = {}  # (sample, seed) -> its representative draw

    @property
    def uses_negative(self) -> bool:
        """Whether clips with text need the negative prompt (classifier-free guidance is on)."""
        return self.guidance.uses_negative()

    def fit(self, blocks: int) -> None:
        """Keep the STG blocks the transformer has (the preflight said which it drops)."""
        self.guidance, _ = self.guidance.fit(blocks)

    def __call__(
        self, transformer: nn.Module, strategy: TrainingStrategy, one: Batch, index: int, negative: TextFeatures | None
    ) -> SampledClip:
        """Clip ``index`` of the sample ``one`` (text features encoded); ``negative``: the negative prompt's."""
        seed = self.seed + index
        key = (one.names[0], seed)
        if key not in self._draws:  # the search prepares the inputs many times: once per run is enough
            self._draws[key] = representative_draw(strategy, one, seed)
        inputs = start_inputs(strategy, one, seed, self._draws[key])
        grid = video_grid(inputs, one) if inputs.video is not None else None
        # Inference denoises audio beside every video: a video-only mode's clip gets that track too, since
        # the video attends to it (then it is dropped: the mode renders no sound).
        added = (
            inputs.audio is None
            and inputs.video_targets is not None
            and one.text is not None
            and one.text.audio_embeds is not None
            and has_audio_stream(transformer)
        )
        if added:
            inputs = with_inference_audio(inputs, one.text, grid, seed)
        guidance = self.guidance if one.text is not None else self.guidance.without_cfg()  # no text: no negative
        against = negative_context(inputs, negative) if negative is not None else None
        sampled = sample(transformer, inputs, self.num_steps, guidance, against)
        return SampledClip(replace(sampled, audio=None) if added else sampled, inputs, grid)
