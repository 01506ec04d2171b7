"""One training job, read top to bottom: claim the run directory, build the parts, plan, build the trainer, fit,
write the weights and the card. ``train`` is independent of ``@hydra.main``: the app, the sweep jobs' ranks
and the tests call it. It always leaves ``result.json`` (``completed``, ``interrupted``, ``pruned`` or
``failed``), except where it refuses to start and where a completed run is asked for the steps it has (nothing is
written then).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ltxtune.ranks import is_main_rank, local_world_size, world_size
from ltxtune.training.announce import start_lines
from ltxtune.training.build import build_training, make_accelerator
from ltxtune.training.card import RunFacts, card_facts
from ltxtune.training.checkpoint import CompatFacts
from ltxtune.training.parts import Parts, build_parts
from ltxtune.training.plan import RunPlan, plan_run
from ltxtune.training.result import RunResult
from ltxtune.training.rundir import RunDir
from ltxtune.training.signals import stop_on_signals
from ltxtune.training.threads import CpuThreads, cpu_threads


def train(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict[str, Any] | None = None,
    *,
    sweep_job: tuple[str, str] | None = None,
    rerun_incomplete: bool = False,
    on_validation: Callable[[int, float], bool] | None = None,
) -> RunResult:
    """Run one job; returns its result (``result.run_dir`` says where it ran). Raises ``ConfigError`` on bad config.

    ``choices``: the config groups' options (``model: tiny``), for the card and the dashboard; ``sweep_job``:
    the wandb (group, name) of a sweep job; ``rerun_incomplete``: a sweep job run again may replace an earlier
    attempt of it that did not complete; ``on_validation(step, val_loss)``: told every validation (on the main
    process), True stops the run there as ``pruned`` (a search's pruner).
    The run directory is where the resumed checkpoint's run is, if any.
    """
    # Where the run goes is decided before anything is built: a bad value still leaves a failed result.json.
    home = RunDir.locate(run_dir, cfg.checkpoint.get("resume"), main=is_main_rank())
    overwrite, asked = bool(cfg.trainer.get("overwrite")), cfg.checkpoint.get("resume") == "auto"
    max_steps, compat = cfg.trainer.max_steps, compat_facts(cfg)
    with home.claimed(max_steps, compat, overwrite, asked_to_resume=asked, rerun_incomplete=rerun_incomplete):
        if (done := home.nothing_to_do(max_steps)) is not None:  # a completed run asked for the steps it has
            return done
        home.write_config(OmegaConf.to_yaml(cfg, resolve=True))
        result = RunResult(run_dir=home.path)
        started = time.perf_counter()
        threads = cpu_threads(local_world_size())
        threads.apply()  # before anything computes: the synthetic data, the model
        try:
            parts = build_parts(cfg)
            plan = plan_run(parts, compat_facts(cfg), world_size(), main=home.main)
            result.validation = "training_subset" if plan.split.val_from_training else "held_out"
            left_out = plan.split.left_out_groups()
            result.left_out_samples = sum(map(len, left_out.values())) or None
            home.report_left_out(left_out)
            if home.main:  # building the model and the first validation take seconds: say what comes
                print(f"data: {plan.split.describe()} ({parts.data.root}); building the model", flush=True)
            labels = JobLabels(choices or {}, OmegaConf.to_container(cfg, resolve=True), sweep_job)
            fit(parts, plan, home, result, labels, threads, on_validation)
        except KeyboardInterrupt:
            result.status, result.interrupted = "interrupted", True
            result.error = "aborted by a second Ctrl-C; resume from the last checkpoint with checkpoint.resume=auto"
            raise
        except BaseException as exc:
            result.error = result.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            result.wall_s = round(time.perf_counter() - started, 3)
            result.settle_objective()
            home.write_result(result)
    return result


def compat_facts(cfg: DictConfig) -> CompatFacts:
    """The resolved ``model``, ``strategy`` and ``lora`` nodes: a checkpoint resumes only under the same ones."""
    return CompatFacts(**{key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "strategy", "lora")})


@dataclass(frozen=True)
class JobLabels:
    """How the job was asked for: the groups' options, the resolved config, and its wandb identity in a sweep."""

    choices: dict[str, Any]
    config: dict[str, Any]
    sweep_job: tuple[str, str] | None = None


def fit(
    parts: Parts,
    plan: RunPlan,
    home: RunDir,
    result: RunResult,
    labels: JobLabels,
    threads: CpuThreads,
    on_validation: Callable[[int, float], bool] | None = None,
) -> None:
    """Build the trainer, resume, train, and write the weights and the card; fills ``result`` as it goes."""
    accelerator = make_accelerator(parts.trainer)
    threads.apply()  # again: on several CPU processes without OMP_NUM_THREADS, accelerate sets its own count
    training = build_training(parts, plan, home.path, accelerator)
    trainer, failed = training.trainer, True
    trainer.on_validation = on_validation
    if home.resume is not None:
        training.checkpointer.load(trainer, home.resume)
    if home.main:
        strategy = labels.choices.get("strategy") or type(parts.strategy).__name__
        model = labels.choices.get("model", "?")
        lines = start_lines(trainer, model, strategy, plan.tokens, threads.line(), home.path, home.resume, home.earlier)
        print("\n".join(lines), flush=True)
    home.truncate_metrics(trainer.step if home.resume is not None else -1)
    try:
        for tracker in training.trackers:
            tracker.start(home.path, labels.config, labels.choices, labels.sweep_job)
        with stop_on_signals(trainer):
            last = trainer.fit(parts.trainer.max_steps, after_step=training.checkpointer.after_step)
        result.train_loss, result.val_loss = last.get("train/loss"), last.get("val/loss")
        result.processes, result.visible_devices = accelerator.num_processes, os.environ.get("CUDA_VISIBLE_DEVICES")
        result.rank_weight_checksums = trainer.weight_checksums()
        if trainer.interrupted and trainer.pruned:  # stopped by the search: keeps its metrics and checkpoint
            training.checkpointer.on_stop(trainer)
            result.prune(trainer.step)
        elif trainer.interrupted:
            training.checkpointer.on_stop(trainer)
            result.interrupt(trainer.stopped_by, trainer.step)
        else:
            result.weights = training.export.save(trainer.unwrapped, home.path, trainer.step).name  # every rank
            if home.main:
                run = RunFacts.of(trainer, result.weights, parts.strategy.get_checkpoint_metadata())
                home.write_card(card_facts(parts, plan.split, run, labels.choices, labels.config, home.path))
            result.status = "completed"
        failed = trainer.interrupted and not trainer.pruned
    finally:
        result.steps = trainer.step
        result.settle_objective()
        for tracker in training.trackers:
            tracker.finish(result.summary(), failed)
        accelerator.end_training()
