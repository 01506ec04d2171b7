"""What a run says before its first step: the model, the data, the strategy, where it writes, where it resumes.

Building the model and the first validation take seconds to minutes on a real checkpoint; these lines say
what is coming and let a user stop a run that was started with the wrong values before it costs anything.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ltxtune.training.loop import Trainer
    from ltxtune.training.plan import SampleTokens
    from ltxtune.training.result import RunResult


def start_lines(
    trainer: Trainer,
    model: str,
    strategy: str,
    tokens: SampleTokens,
    threads: str,
    run_dir: Path,
    resumed: Path | None,
    earlier: RunResult | None = None,
) -> list[str]:
    """The lines printed once the model is built, before the first validation and step; ``threads``: the CPU
    threads' line; ``earlier``: what the resumed run left in ``result.json``."""
    total = sum(p.numel() for p in trainer.model.transformer.parameters())
    trainable = sum(p.numel() for p in trainer.trainable)
    settings, validator = trainer.settings, trainer.validator
    every = f"every {validator.every} steps" if validator.every else "at the start and the end"
    clips = f", {validator.clips.num_prompts} clips" if validator.clips is not None else ""
    sharded = ", FSDP (one shard per process)" if trainer.parallel.sharded else ""
    lines = [
        f"model {model}: {total / 1e6:,.2f} M parameters, {trainable / 1e6:,.3f} M trainable"
        f" ({100 * trainable / max(total, 1):.2f}%) on {trainer.accelerator.device}",
        f"strategy {strategy}: {tokens} tokens per sample",
        f"training: {settings.max_steps} steps of {settings.batch_size} x {settings.grad_accum} samples"
        f" x {trainer.accelerator.num_processes} processes{sharded}; val/loss {every}"
        f" at {len(validator.loss.settings.sigmas)} sigmas{clips}",
        threads,
        f"run directory: {run_dir}",
    ]
    if resumed is not None and earlier is not None and earlier.completed:
        lines.append(
            f"continuing the completed run ({earlier.steps} steps) from step {trainer.step} to {settings.max_steps}"
            f" ({resumed})"
        )
    elif resumed is not None:
        lines.append(f"resuming from step {trainer.step} ({resumed})")
    if resumed is not None and (note := schedule_change(trainer)) is not None:
        lines.append(note)
    return lines


def schedule_change(trainer: Trainer) -> str | None:
    """What a resume with another ``trainer.max_steps`` does to the learning rate: the schedule is sized for
    the new length, so a decaying one moves (the first steps followed the old size)."""
    scheduler = trainer.scheduler
    before = scheduler.get_last_lr()[0]  # restored from the checkpoint: the rate its next step would have taken
    now = scheduler.base_lrs[0] * scheduler.lr_lambdas[0](trainer.step)
    if math.isclose(now, before, rel_tol=1e-6, abs_tol=1e-12):
        return None
    return (
        f"note: the learning-rate schedule is now sized for {trainer.settings.max_steps} steps: step "
        f"{trainer.step + 1} trains at lr {now:.3g}, where the resumed run's schedule was at {before:.3g}"
    )
