"""Inpainting: the holes given by mask videos are generated, the rest of the clip is the condition."""

from __future__ import annotations

import torch
from torch import Tensor

from ltxtune.data.batch import Batch
from ltxtune.data.needs import DataNeeds
from ltxtune.diffusion import positions
from ltxtune.diffusion.inputs import ModelInputs
from ltxtune.diffusion.samplers import TimestepSampler
from ltxtune.diffusion.tokens import VideoTokens
from ltxtune.errors import DataError, check_range
from ltxtune.strategies.base import Given, MaskCoverage, TrainingStrategy, video_modality
from ltxtune.strategies.conditions import Stream


class Inpainting(TrainingStrategy):
    """Noise and score only the tokens inside the hole; keep the others clean at timestep 0.

    ``mask_latents/`` holds, per latent cell, the fraction of its pixels and frames that the user's mask marks to
    generate (``[128, F, H, W]`` like ``latents/``, the same value in every channel; preprocessing writes it). A
    token is in the hole when that fraction, averaged over channels, is above ``mask_threshold``: 0.5 inpaints
    the cells at least half masked.
    """

    TRAINING_KNOBS = ("mask_threshold",)

    def __init__(
        self,
        mask_threshold: float = 0.5,
        latents_dir: str = "latents",
        mask_latents_dir: str = "mask_latents",
        conditions_dir: str = "conditions",
    ) -> None:
        check_range("mask_threshold", mask_threshold, 0.0, 1.0)
        self.mask_threshold = mask_threshold
        self.latents_dir, self.mask_latents_dir, self.conditions_dir = latents_dir, mask_latents_dir, conditions_dir

    def data_needs(self) -> DataNeeds:
        return DataNeeds(text=self.conditions_dir, video_latents=self.latents_dir, mask_latents=self.mask_latents_dir)

    def givens(self) -> tuple[Given, ...]:
        what = f"the clip outside the holes of its mask videos ({self.mask_latents_dir}/)"
        return (Given("mask_latents", "video_latents", what, 1.0),)

    def cell_fractions(self, batch: Batch, video: VideoTokens) -> Tensor:
        """``[B, T]``: each token's fraction to generate."""
        fractions = positions.patchify_video(batch.mask_latents.latents).mean(dim=-1)
        if fractions.shape != video.tokens.shape[:2]:
            found, expected = fractions.shape[1], video.tokens.shape[1]
            raise DataError(
                f"{self.mask_latents_dir}/ latents make {found} tokens and {self.latents_dir}/ {expected}: mask latents"
                " need the video latents' frames, height and width"
            )
        return fractions

    def inpaint_mask(self, batch: Batch, video: VideoTokens) -> Tensor:
        """``[B, T]`` True on the tokens to generate."""
        return self.cell_fractions(batch, video) > self.mask_threshold

    def mask_coverage(self, batch: Batch) -> list[MaskCoverage]:
        fractions = self.cell_fractions(batch, VideoTokens.from_clip(batch.video_latents))
        generated = (fractions > self.mask_threshold).float().mean(dim=1)
        values = (float(fractions.min()), float(fractions.max()))
        return [MaskCoverage("mask_threshold", self.mask_threshold, self.mask_latents_dir, generated, values, True)]

    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs:
        video = VideoTokens.from_clip(batch.video_latents)
        inpaint = self.inpaint_mask(batch, video)
        sigma = sampler.sample_for(video.tokens, generator)
        stream = Stream.generated(video, sigma, generator).condition(~inpaint)  # the hole is generated
        modality = video_modality(stream.noised, stream.positions, batch.text)
        return ModelInputs.of(stream.inputs("video", modality))

    def get_checkpoint_metadata(self) -> dict[str, float]:
        return {"mask_threshold": self.mask_threshold}
