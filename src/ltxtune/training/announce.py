"""What a run says before its first step: the model, the data, the strategy, where it writes, where it resumes.

Building the model and the first validation take seconds to minutes on a real checkpoint; these lines say
what is coming and let a user stop a run that was started with the wrong values before it costs anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ltxtune.data.batch import collate
from ltxtune.diffusion.samplers import UniformSampler

if TYPE_CHECKING:
    from ltxtune.data.dataset import PrecomputedDataset
    from ltxtune.strategies.base import TrainingStrategy
    from ltxtune.training.loop import Trainer


@dataclass(frozen=True)
class SampleTokens:
    """Tokens one sample puts through the transformer (conditions included): what a step's cost follows."""

    video: int
    audio: int
    text: int

    def __str__(self) -> str:
        return f"{self.video} video, {self.audio} audio, {self.text} text"


def sample_tokens(strategy: TrainingStrategy, dataset: PrecomputedDataset) -> SampleTokens:
    """The token counts of the strategy's inputs for the dataset's first sample (one draw, its own generator)."""
    inputs = strategy.prepare_training_inputs(collate([dataset[0]]), UniformSampler(), torch.Generator().manual_seed(0))
    video = inputs.video.latent.shape[1] if inputs.video is not None else 0
    audio = inputs.audio.latent.shape[1] if inputs.audio is not None else 0
    context = inputs.video.context if inputs.video is not None else inputs.audio.context
    return SampleTokens(video, audio, int(context.shape[1]))


def start_lines(
    trainer: Trainer, model: str, strategy: str, tokens: SampleTokens, run_dir: Path, resumed: Path | None
) -> list[str]:
    """The lines printed once the model is built, before the first validation and step."""
    total = sum(p.numel() for p in trainer.model.transformer.parameters())
    trainable = sum(p.numel() for p in trainer.trainable)
    settings, validator = trainer.settings, trainer.validator
    every = f"every {validator.every} steps" if validator.every else "at the start and the end"
    clips = f", {validator.clips.num_prompts} clips" if validator.clips is not None else ""
    lines = [
        f"model {model}: {total / 1e6:,.2f} M parameters, {trainable / 1e6:,.3f} M trainable"
        f" ({100 * trainable / max(total, 1):.2f}%) on {trainer.accelerator.device}",
        f"strategy {strategy}: {tokens} tokens per sample",
        f"training: {settings.max_steps} steps of {settings.batch_size} x {settings.grad_accum} samples"
        f" x {trainer.accelerator.num_processes} processes{trainer.parallel_note()}; val/loss {every}"
        f" at {len(validator.loss.settings.sigmas)} sigmas{clips}",
        f"run directory: {run_dir}",
    ]
    if resumed is not None:
        lines.append(f"resuming from step {trainer.step} ({resumed})")
    return lines
