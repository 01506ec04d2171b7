"""Validation as one component: given the model and the step, the fixed-draw loss and the clips, measured with
the evaluation strategy (the training strategy with its training-only knobs fixed)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ltxtune.data.dataset import PrecomputedDataset
from ltxtune.errors import TrainingError
from ltxtune.evaluation.loss import ValidationLoss
from ltxtune.evaluation.settings import ValidationSettings, VideoSettings
from ltxtune.evaluation.videos import ValidationClips, build_clips
from ltxtune.model.base import LoadedModel
from ltxtune.strategies.base import TrainingStrategy

Say = Callable[[str], None]  # a line saying what validation does now (it can take a while)


@dataclass(frozen=True)
class ValidationResult:
    """What one validation measured (``val/loss``, ``val/loss_sigma_<s>``, ``val/preview_distance``) and the
    files it wrote (the clips and ``preview.png``; none on the ranks that do not write)."""

    metrics: dict[str, float]
    files: tuple[Path, ...]


class Validation:
    """``val/loss`` and the validation clips, before the first step, every ``every`` steps and at the end.

    Args:
        loss: the fixed-draw loss over the held-out samples (it holds them, on the device).
        clips: the clips (``None``: ``validation_videos.enabled=false``).
        strategy: what is measured: the training strategy with its training-only knobs fixed.
        every: steps between validations (0: only the first and the last).
        offload_optimizer: the optimizer state waits in host memory meanwhile (the trainer holds it).
    """

    def __init__(
        self,
        loss: ValidationLoss,
        clips: ValidationClips | None,
        strategy: TrainingStrategy,
        every: int,
        offload_optimizer: bool = False,
    ) -> None:
        self.loss, self.clips, self.strategy = loss, clips, strategy
        self.every, self.offload_optimizer = every, offload_optimizer

    def due(self, step: int, max_steps: int) -> bool:
        """Between the first and the last step (those two always validate)."""
        return bool(self.every) and step % self.every == 0 and step < max_steps

    def __call__(self, model: LoadedModel, step: int, say: Say = lambda line: None) -> ValidationResult:
        """Validate ``model`` (the unwrapped transformer and its text path) at ``step``; its train/eval mode is
        restored. Every rank must call it (under FSDP the forward gathers shards). Raises ``TrainingError``
        when the loss is not a finite number: the weights no longer are."""
        transformer = model.transformer
        was_training = transformer.training
        transformer.eval()

        def progress(done: int, total: int) -> None:
            say(f"step {step}: validation loss {done}/{total}")

        try:
            metrics = self.loss(transformer, model.encode_text, self.strategy, progress)
        finally:
            transformer.train(was_training)
        if not math.isfinite(metrics["val/loss"]):
            raise TrainingError(
                f"step {step}: the validation loss is {metrics['val/loss']}: the weights are no longer finite"
                " numbers (lower optimizer.lr, or look for NaN/inf values in the held-out samples)"
            )
        if self.clips is None:
            return ValidationResult(metrics, ())
        say(f"step {step}: validation clips")
        clips = self.clips(transformer, model.encode_text, self.loss.batches, self.strategy, step)
        if clips.preview_distance is not None:
            metrics["val/preview_distance"] = clips.preview_distance
        return ValidationResult(metrics, clips.files)


def build_validation(
    settings: ValidationSettings,
    videos: VideoSettings,
    strategy: TrainingStrategy,
    held_out: PrecomputedDataset,
    run_dir: Path,
    *,
    batch_size: int,
    device: torch.device,
    write: bool = True,
) -> Validation:
    """The run's validation: the loss over ``held_out`` (loaded once onto ``device`` in batches of
    ``batch_size``) and the clips ``videos`` ask for, both measured with ``strategy``; ``write``: this
    process writes the clips (the main one)."""
    loss = ValidationLoss(held_out, settings, batch_size, device)
    clips = build_clips(videos, loss.batches, run_dir, write)
    return Validation(loss, clips, strategy, settings.every, settings.offload_optimizer)
