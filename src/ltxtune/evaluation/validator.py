"""When validation runs and what it holds: the fixed-draw loss and the clips, for one run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltxtune.evaluation.loss import ValidationLoss
from ltxtune.evaluation.videos import ValidationVideos
from ltxtune.strategies.base import TrainingStrategy


@dataclass(frozen=True)
class Validator:
    """``val/loss`` and the validation clips, before the first step, every ``every`` steps and at the end,
    measured with ``strategy``: the training strategy with its training-only knobs fixed."""

    loss: ValidationLoss
    videos: ValidationVideos
    every: int
    run_dir: Path
    strategy: TrainingStrategy
    offload_optimizer: bool = False

    def due(self, step: int, max_steps: int) -> bool:
        """Between the first and the last step (those two always validate)."""
        return bool(self.every) and step % self.every == 0 and step < max_steps
