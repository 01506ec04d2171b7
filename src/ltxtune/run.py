"""One training job: validate the config, build the parts, train, and leave the run directory complete.

``train(cfg, run_dir)`` is independent of ``@hydra.main``: tests and the sweep workers call it directly.
It always writes ``result.json`` (``completed`` or ``failed``) and returns the sweep objective.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ltxtune.build import Parts, build_parts
from ltxtune.errors import ConfigError
from ltxtune.settings import TrainerSettings


def check_device(settings: TrainerSettings) -> None:
    if settings.mixed_precision == "fp16" and (settings.cpu or not torch.cuda.is_available()):
        raise ConfigError("trainer.mixed_precision", "fp16", "'no' or 'bf16' without a CUDA device (fp16 needs a GPU)")


def reset_accelerate_state() -> None:
    """Several jobs in one process (Hydra's basic launcher): each must start with accelerate's state fresh."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(run_dir / "result.json")


def objective_of(value: float | None) -> float:
    """The float a sweeper minimizes: never NaN (a NaN crashes an Optuna study), ``inf`` when unknown."""
    return float(value) if value is not None and math.isfinite(value) else math.inf


def train(cfg: DictConfig, run_dir: Path, choices: dict[str, Any] | None = None) -> float:
    """Run one job; returns the objective (final validation loss). Raises ``ConfigError`` on bad config."""
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"status": "failed", "steps": 0}
    try:
        parts = build_parts(cfg)
        check_device(parts.trainer)
        strategy_name = cfg.strategy._target_.rsplit(".", 1)[-1]
        train_set, val_set = parts.data.split(parts.strategy.get_data_sources(), strategy_name)
        _train(cfg, parts, train_set, val_set, run_dir, choices or {}, result)
        result["status"] = "completed"
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        result["wall_s"] = round(time.perf_counter() - started, 3)
        result["objective"] = objective_of(result.get("val/loss")) if result["status"] == "completed" else math.inf
        write_result(run_dir, result)
    return result["objective"]


def _train(cfg: DictConfig, parts: Parts, train_set, val_set, run_dir: Path, choices: dict, result: dict) -> None:
    """Build the heavy parts and train; fills ``result`` as it goes so a failure still reports progress."""
    from accelerate import Accelerator

    from ltxtune.data.sampler import BucketBatchSampler
    from ltxtune.loop import Trainer
    from ltxtune.tracking import MetricsFile
    from ltxtune.validation import ValidationLoss

    settings = parts.trainer
    reset_accelerate_state()
    accelerator = Accelerator(
        mixed_precision=settings.mixed_precision, gradient_accumulation_steps=settings.grad_accum, cpu=settings.cpu
    )
    torch.manual_seed(settings.seed)
    model = parts.model.build(settings.seed, accelerator.device)
    parts.lora.apply(model)
    trainable = [p for p in model.transformer.parameters() if p.requires_grad]
    optimizer = parts.optimizer.build(trainable)
    scheduler = parts.scheduler.build(optimizer, settings.max_steps)
    batches = BucketBatchSampler(
        [train_set.shape_key(i) for i in range(len(train_set))],
        settings.batch_size,
        settings.seed,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
    )
    validation = ValidationLoss(val_set, parts.validation, settings.batch_size, accelerator.device)
    trackers = [MetricsFile(), parts.logger] if accelerator.is_main_process else []
    config = OmegaConf.to_container(cfg, resolve=True)
    failed = True
    try:
        for tracker in trackers:
            tracker.start(run_dir, config, choices)
        trainer = Trainer(
            accelerator=accelerator,
            model=model,
            strategy=parts.strategy,
            sampler=parts.sampler,
            optimizer=optimizer,
            scheduler=scheduler,
            dataset=train_set,
            batches=batches,
            validation=validation,
            validate_every=parts.validation.every,
            trackers=trackers,
            settings=settings,
        )
        last = trainer.fit(settings.max_steps)
        result.update(steps=trainer.step, **{k: last[k] for k in ("train/loss", "val/loss") if k in last})
        if accelerator.is_main_process:
            metadata = {
                "strategy": cfg.strategy._target_,
                "strategy_metadata": parts.strategy.get_checkpoint_metadata(),
                "step": trainer.step,
            }
            unwrapped = accelerator.unwrap_model(trainer.transformer)
            saved = parts.lora.save(unwrapped, run_dir / parts.lora.filename, metadata)
            result["weights"] = saved.name
        failed = False
    finally:
        for tracker in trackers:
            tracker.finish({k: v for k, v in result.items() if isinstance(v, int | float | str)}, failed)
        accelerator.end_training()
