"""One training job: validate the config, build the parts, train, and leave the run directory complete.

``train(cfg, run_dir)`` is independent of ``@hydra.main``: tests and the sweep workers call it directly.
It always writes ``result.json`` (``completed`` or ``failed``) and returns the sweep objective.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ltxtune.data.spec import Split
from ltxtune.errors import ConfigError
from ltxtune.model.adapters import FullFinetune
from ltxtune.ranks import is_main_rank, world_size
from ltxtune.training.card import card_facts, remove_stale_card, write_card
from ltxtune.training.parts import Parts, build_parts
from ltxtune.training.result import RunResult
from ltxtune.training.rundir import RunLock, claim


def check_combination(parts: Parts) -> None:
    """Values that are each valid but do not work together."""
    settings = parts.trainer
    if settings.mixed_precision == "fp16" and (settings.cpu or not torch.cuda.is_available()):
        raise ConfigError("trainer.mixed_precision", "fp16", "'no' or 'bf16' without a CUDA device (fp16 needs a GPU)")
    warmup = getattr(parts.scheduler, "warmup_steps", 0)
    if warmup >= settings.max_steps and is_main_rank():
        print(
            f"warning: scheduler.warmup_steps={warmup} >= trainer.max_steps={settings.max_steps}: the learning rate"
            " never reaches optimizer.lr in this run",
            flush=True,
        )
    quantization = getattr(parts.model, "quantization", None)
    if quantization and isinstance(parts.lora, FullFinetune):
        raise ConfigError("model.quantization", quantization, "null with lora=none (a quantized base trains a LoRA)")
    if quantization == "int8" and world_size() > 1:  # DDP's start-up broadcast cannot copy torchao's tensors
        raise ConfigError(
            "model.quantization",
            "int8",
            f"fp8_cast or null with {world_size()} processes (an int8 base trains in"
            " one process: torchao's int8 weights cannot be broadcast by DDP, and FSDP over them is untested)",
        )
    if getattr(parts.model, "dtype", "float32") == "bfloat16" and settings.mixed_precision == "no":
        raise ConfigError("model.dtype", "bfloat16", "float32, or keep bfloat16 with trainer.mixed_precision=bf16")


@dataclass(frozen=True)
class JobOutcome:
    """Where a job really ran (a resume by path continues in the checkpoint's run) and its objective."""

    run_dir: Path
    objective: float


def train(cfg: DictConfig, run_dir: Path, choices: dict[str, Any] | None = None) -> float:
    """Run one job; returns the objective (final validation loss). Raises ``ConfigError`` on bad config."""
    return train_job(cfg, run_dir, choices).objective


def train_job(
    cfg: DictConfig, run_dir: Path, choices: dict[str, Any] | None = None, rerun_incomplete: bool = False
) -> JobOutcome:
    """Run one job and say where it ran. Raises ``ConfigError`` on bad config.

    With ``checkpoint.resume`` pointing at another run's checkpoint, the job continues in that run's
    directory (same ``metrics.jsonl``, same wandb run). A fresh run refuses a directory holding another
    run's results unless ``trainer.overwrite``; ``rerun_incomplete`` (a sweep job run again) lets it
    replace an earlier attempt that did not complete. Nothing in the directory changes before that check.
    """
    from ltxtune.training.checkpoint import resolve_resume, run_dir_of

    resume = resolve_resume(cfg.checkpoint.get("resume"), run_dir, checksums=is_main_rank())
    if resume is not None and run_dir_of(resume) != run_dir.resolve():
        run_dir = run_dir_of(resume)
        print(f"resuming {resume.name} in its run directory {run_dir}", flush=True)
    main = is_main_rank()
    with RunLock(run_dir, enabled=main):  # first: a live run in the directory is named as such, not as results
        if main:
            earlier = RunResult.read(run_dir)
            replaceable = rerun_incomplete and (earlier is None or not earlier.completed)
            overwrite = bool(cfg.trainer.get("overwrite")) or replaceable
            asked = cfg.checkpoint.get("resume") == "auto"
            claim(run_dir, resuming=resume is not None, overwrite=overwrite, asked_to_resume=asked)
            if resume is None:
                remove_stale_card(run_dir)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        return _job(cfg, run_dir, choices or {}, resume)


def _job(cfg: DictConfig, run_dir: Path, choices: dict[str, Any], resume: Path | None) -> JobOutcome:
    """The job in its claimed directory: ``result.json`` is written whatever happens."""
    started = time.perf_counter()
    result = RunResult()
    try:
        parts = build_parts(cfg)
        check_combination(parts)
        strategy_name = cfg.strategy._target_.rsplit(".", 1)[-1]
        split = parts.data.split(parts.strategy.data_needs(), strategy_name, parts.model.text_widths)
        result.validation = "training_subset" if split.val_from_training else "held_out"
        if split.left_out or split.without_audio:
            result.left_out_samples = len(split.left_out) + len(split.without_audio)
            if is_main_rank():
                report_left_out(split.left_out, run_dir, split.without_audio)
        check_data(cfg, parts, split.train)
        if is_main_rank():  # building the model and the first validation take seconds: say what comes
            print(f"data: {split.describe()} ({parts.data.root}); building the model", flush=True)
        _train(cfg, parts, split, run_dir, choices, result, resume)
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
        if is_main_rank():
            try:
                result.write(run_dir)
            except OSError as exc:  # a full disk: say so, keep the error that brought us here
                print(f"error: could not write {run_dir / 'result.json'}: {exc.strerror or exc}", flush=True)
    return JobOutcome(run_dir, result.objective)


LEFT_OUT_REPORT = "left_out_samples.json"


def report_left_out(left_out: dict[str, str], run_dir: Path, without_audio: dict[str, str] | None = None) -> None:
    """Say which samples were left out, in one line and a file with every reason: the unreadable ones
    (``data.strict=false``) and the clips without sound a strategy with audio cannot train on."""
    every = {**(without_audio or {}), **left_out}
    (run_dir / LEFT_OUT_REPORT).write_text(json.dumps(every, indent=1) + "\n")
    counts = [f"{len(left_out)} unreadable (data.strict=false)"] if left_out else []
    counts += [f"{len(without_audio)} without audio"] if without_audio else []
    first, why = next(iter(every.items()))
    print(
        f"warning: left out {len(every)} samples: {', '.join(counts)}, e.g. {first}: {why}; "
        f"every one with its reason in {run_dir / LEFT_OUT_REPORT}",
        flush=True,
    )


def check_data(cfg: DictConfig, parts: Parts, train_set: Any) -> None:
    """Shape-dependent settings (boundaries, crop boxes, reference scales) and what the model takes (latent
    channels, text width and length) against one real sample, before the model is built; also lets the
    strategy learn what its checkpoint metadata records."""
    from ltxtune.data.batch import collate
    from ltxtune.training.preflight import check_model_inputs

    batch = collate([train_set[0]])
    try:
        parts.strategy.check_data(batch)
    except ConfigError as exc:
        raise exc.within("strategy") from None
    check_model_inputs(cfg, parts.model, batch)


def write_model_card(cfg: DictConfig, run_dir: Path, trainer: Any, split: Split, choices: dict, weights: str) -> None:
    """``README.md`` beside the weights of a completed run (main process only)."""
    facts = card_facts(
        cfg,
        run_dir,
        weights=weights,
        steps=trainer.step,
        choices=choices,
        metrics=trainer.last,
        strategy_metadata=trainer.strategy.get_checkpoint_metadata(),
        val_names=tuple(split.val.names),
        val_from_training=split.val_from_training,
        processes=trainer.accelerator.num_processes,
    )
    write_card(run_dir, facts)


def compat_facts(cfg: DictConfig) -> dict[str, Any]:
    """The config that a checkpoint's weights depend on: resuming with other values is refused."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "strategy", "lora")}


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop what a killed run logged after its last checkpoint, so the resumed run's lines follow on."""
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if (row := parse_line(ln)) and row["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in lines))


def parse_line(line: str) -> dict[str, Any] | None:
    """One line of ``metrics.jsonl``; ``None`` for a line a kill cut short (or any that is not a record)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None


STOP_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}


@contextmanager
def stop_on_signals(trainer: Any) -> Iterator[None]:
    """SIGTERM (a cluster's preemption) and Ctrl-C ask the trainer to checkpoint and stop at the next step
    boundary; a second Ctrl-C aborts at once (``KeyboardInterrupt``)."""

    def request(signum: int, frame: Any) -> None:
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop_requested, trainer.stopped_by = True, STOP_SIGNALS[signum]
        if signum == signal.SIGINT:
            print(
                "\nCtrl-C: stopping at the end of this step and saving a checkpoint (Ctrl-C again aborts)", flush=True
            )

    try:
        previous = {sig: signal.signal(sig, request) for sig in STOP_SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _train(
    cfg: DictConfig,
    parts: Parts,
    split: Split,
    run_dir: Path,
    choices: dict,
    result: RunResult,
    resume: Path | None,
) -> None:
    """Build the heavy parts and train; fills ``result`` as it goes so a failure still reports progress."""
    from ltxtune.training.announce import sample_tokens, start_lines
    from ltxtune.training.assemble import assemble_trainer, make_accelerator
    from ltxtune.training.checkpoint import Checkpointer
    from ltxtune.training.tracking import MetricsFile

    settings = parts.trainer
    accelerator = make_accelerator(settings)
    trackers = [MetricsFile(), parts.logger] if accelerator.is_main_process else []
    failed = True
    checkpointer = Checkpointer(run_dir, parts.checkpoint.keep_last, compat_facts(cfg), parts.checkpoint.every)
    trainer = assemble_trainer(
        parts,
        split.train,
        split.val,
        run_dir,
        accelerator,
        trackers=trackers,
        metadata={"strategy": cfg.strategy._target_},
        checkpointer=checkpointer,
    )
    if resume is not None:
        checkpointer.load(trainer, resume)
    if accelerator.is_main_process:
        tokens = sample_tokens(parts.strategy, split.train)
        model, strategy = choices.get("model", "?"), choices.get("strategy") or cfg.strategy._target_
        print("\n".join(start_lines(trainer, model, strategy, tokens, run_dir, resume)), flush=True)
    if accelerator.is_main_process:  # a fresh run in a used directory starts a fresh metrics file
        truncate_metrics(run_dir, trainer.step if resume is not None else -1)
    try:
        for tracker in trackers:
            tracker.start(run_dir, OmegaConf.to_container(cfg, resolve=True), choices)
        with stop_on_signals(trainer):
            last = trainer.fit(settings.max_steps)
        result.train_loss, result.val_loss = last.get("train/loss"), last.get("val/loss")
        result.processes = accelerator.num_processes
        result.visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        result.rank_weight_checksums = trainer.weight_checksums()
        if trainer.interrupted:
            result.error = (
                f"interrupted by {trainer.stopped_by} at step {trainer.step}; resume with checkpoint.resume=auto"
            )
            result.status, result.interrupted = "interrupted", True
        else:
            if accelerator.is_main_process:
                print(f"saving {run_dir / parts.lora.filename}", flush=True)
            result.weights = trainer.save_weights(run_dir / parts.lora.filename).name  # every rank: FSDP gathers
            if accelerator.is_main_process:
                write_model_card(cfg, run_dir, trainer, split, choices, result.weights)
            result.status = "completed"
        failed = trainer.interrupted
    finally:
        result.steps = trainer.step
        result.settle_objective()
        summary = {k: v for k, v in result.to_dict().items() if isinstance(v, int | float | str)}
        for tracker in trackers:
            tracker.finish(summary, failed)
        accelerator.end_training()
