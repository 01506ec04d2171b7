"""From validated parts to a ready ``Trainer``: the one place a run (and the benchmark) puts the loop together."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from ltxtune.data.dataset import PrecomputedDataset
from ltxtune.data.sampler import BucketBatchSampler
from ltxtune.evaluation.validation import build_validation
from ltxtune.model.adapters import trainable_parameters
from ltxtune.training.checkpoint import Checkpointer
from ltxtune.training.distributed import FSDP_ENV, parallelism
from ltxtune.training.loop import Trainer
from ltxtune.training.parts import Parts
from ltxtune.training.settings import TrainerSettings
from ltxtune.training.stream import BatchStream
from ltxtune.training.tracking import Tracker


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


def assemble_trainer(
    parts: Parts,
    train_set: PrecomputedDataset,
    val_set: PrecomputedDataset,
    run_dir: Path,
    accelerator: Accelerator,
    *,
    trackers: list[Tracker],
    metadata: dict[str, Any],
    checkpointer: Checkpointer | None = None,
    schedule_steps: int | None = None,
) -> Trainer:
    """Build the model (seeded), its adapter, the optimizer and schedule, the batch stream and the validator."""
    settings = parts.trainer
    torch.manual_seed(settings.seed)
    model = parts.model.build(settings.seed, accelerator.device)
    parts.lora.apply(model)
    if settings.gradient_checkpointing:
        model.transformer.set_gradient_checkpointing(True)
    if settings.compile:  # per block: one compiled graph serves every layer, and recompiles stay local
        for block in model.transformer.transformer_blocks:
            block.compile()
    parallel = parallelism(settings.distributed, accelerator.num_processes)
    parallel.shard(model.transformer)  # FSDP replaces the parameters: before the optimizer takes them
    optimizer = parts.optimizer.build(trainable_parameters(model.transformer))
    scheduler = parts.scheduler.build(optimizer, schedule_steps or settings.max_steps)
    batches = BucketBatchSampler(
        [train_set.shape_key(i) for i in range(len(train_set))],
        settings.batch_size,
        settings.seed,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
    )
    validator = build_validation(
        parts.validation,
        parts.validation_videos,
        parts.evaluation,
        val_set,
        run_dir,
        batch_size=settings.batch_size,
        device=accelerator.device,
        write=accelerator.is_main_process,
    )
    return Trainer(
        accelerator=accelerator,
        parallel=parallel,
        model=model,
        adapter=parts.lora,
        strategy=parts.strategy,
        sampler=parts.sampler,
        optimizer=optimizer,
        scheduler=scheduler,
        stream=BatchStream(train_set, batches, parts.loader, accelerator.device),
        validator=validator,
        checkpointer=checkpointer,
        trackers=trackers,
        settings=settings,
        metadata=metadata,
    )
