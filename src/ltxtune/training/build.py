"""From validated parts and a plan to a ready ``Trainer`` and its collaborators: the one place a run (and the
benchmark) puts the loop together."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from ltxtune.data.dropout import CaptionDropout
from ltxtune.data.sampler import BucketBatchSampler
from ltxtune.evaluation.validation import build_validation
from ltxtune.model.adapters import trainable_parameters
from ltxtune.training.checkpoint import Checkpointer
from ltxtune.training.distributed import FSDP_ENV, parallelism
from ltxtune.training.export import WeightsExport
from ltxtune.training.loop import Trainer
from ltxtune.training.parts import Parts
from ltxtune.training.plan import RunPlan
from ltxtune.training.settings import TrainerSettings
from ltxtune.training.stream import BatchStream
from ltxtune.training.tracking import MetricsFile, Tracker


def reset_accelerate_state() -> None:
    """Several jobs in one process (Hydra's basic launcher): each must start with accelerate's state fresh."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def use_cpu(forced: bool) -> bool:
    """Accelerate only sets up several CPU processes (gloo) when told it runs on the CPU."""
    return forced or not torch.cuda.is_available()


@contextmanager
def accelerate_fsdp_off() -> Iterator[None]:
    """ltxtune shards the model itself (``training/distributed.py``): accelerate, told by ``accelerate launch``'s
    FSDP config, would shard it a second way on GPUs. The variable stays set for the rest of the run."""
    saved = os.environ.pop(FSDP_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[FSDP_ENV] = saved


def make_accelerator(settings: TrainerSettings) -> Accelerator:
    reset_accelerate_state()
    with accelerate_fsdp_off():
        return Accelerator(
            mixed_precision=settings.mixed_precision,
            gradient_accumulation_steps=settings.grad_accum,
            cpu=use_cpu(settings.cpu),
            # A video-only strategy leaves the audio stream's adapters without gradients (and vice versa).
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )


@dataclass(frozen=True)
class Training:
    """The loop and what works beside it: where the weights and checkpoints go, where metrics go."""

    trainer: Trainer
    export: WeightsExport
    checkpointer: Checkpointer
    trackers: list[Tracker]


def build_training(
    parts: Parts, plan: RunPlan, run_dir: Path, accelerator: Accelerator, schedule_steps: int | None = None
) -> Training:
    """Build the model (seeded), its adapter, the optimizer and schedule, the batch stream, the validator, the
    trackers, the weights export and the checkpointer. ``schedule_steps``: the schedule's length when it is
    not ``trainer.max_steps`` (a benchmark that steps on)."""
    settings, split = parts.trainer, plan.split
    # Validation: the loss at fixed sigmas on the held-out samples, and the clips. Built first: the validation
    # prompts are encoded now, and their encoders (Gemma with encoders=ltx2) freed before the transformer loads.
    validator = build_validation(
        parts.validation,
        parts.validation_videos,
        parts.evaluation,
        split.val,
        run_dir,
        batch_size=settings.batch_size,
        device=accelerator.device,
        write=accelerator.is_main_process,
    )
    # The model, seeded: every rank builds the same weights (FSDP shards them before the optimizer takes them).
    torch.manual_seed(settings.seed)
    model = parts.model.build(settings.seed, accelerator.device)
    parts.lora.apply(model)
    if settings.gradient_checkpointing:
        model.transformer.set_gradient_checkpointing(True)
    if settings.compile:  # per block: one compiled graph serves every layer, and recompiles stay local
        for block in model.transformer.transformer_blocks:
            block.compile()
    parallel = parallelism(settings.distributed, accelerator.num_processes)
    parallel.shard(model.transformer)
    # The optimizer and its schedule, over the trainable weights only.
    optimizer = parts.optimizer.build(trainable_parameters(model.transformer))
    scheduler = parts.scheduler.build(optimizer, schedule_steps or settings.max_steps)
    # This rank's batches: shape buckets, in an order every rank derives from the seed.
    batches = BucketBatchSampler(
        [split.train.shape_key(i) for i in range(len(split.train))],
        settings.batch_size,
        settings.seed,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
    )
    # Caption dropout: training batches only (validation reads split.val), drawn from the seed and the position.
    dropout = None
    if split.empty_text is not None:
        dropout = CaptionDropout(parts.data.caption_dropout, split.empty_text, settings.seed, accelerator.process_index)
    # Where metrics go: metrics.jsonl and the logger, written by the main process.
    trackers = [MetricsFile(), parts.logger] if accelerator.is_main_process else []
    trainer = Trainer(
        accelerator=accelerator,
        parallel=parallel,
        model=model,
        strategy=parts.strategy,
        sampler=parts.sampler,
        optimizers=(optimizer, scheduler),
        stream=BatchStream(split.train, batches, parts.loader, accelerator.device, dropout),
        validator=validator,
        trackers=trackers,
        settings=settings,
    )
    # The inference file of the weights, and the checkpoints that resume the run step for step.
    export = WeightsExport(parts.lora, parallel, accelerator, parts.strategy)
    checkpointer = Checkpointer(run_dir, export, plan.compat, parts.checkpoint.every, parts.checkpoint.keep_last)
    return Training(trainer, export, checkpointer, trackers)
