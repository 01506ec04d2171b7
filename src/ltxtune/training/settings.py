"""The run's own scalar settings (``trainer``, ``checkpoint``, ``loader``), checked before anything is built."""

from __future__ import annotations

from dataclasses import dataclass

from ltxtune.errors import check_choice, check_range, check_types


@dataclass(frozen=True)
class TrainerSettings:
    max_steps: int = 60
    batch_size: int = 4
    grad_accum: int = 1
    seed: int = 0
    mixed_precision: str = "no"
    max_grad_norm: float = 1.0
    log_every: int = 1
    cpu: bool = False
    gradient_checkpointing: bool = False
    compile: bool = False
    dry_run: bool = False
    nonfinite: str = "stop"
    overwrite: bool = False
    distributed: str = "ddp"

    def __post_init__(self) -> None:
        check_types(self)
        check_choice("distributed", self.distributed, ("ddp", "fsdp"))
        check_choice("nonfinite", self.nonfinite, ("stop", "skip"))
        check_range("max_steps", self.max_steps, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("grad_accum", self.grad_accum, 1)
        check_range("seed", self.seed, 0)
        check_choice("mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        check_range("max_grad_norm", self.max_grad_norm, 0.0)
        check_range("log_every", self.log_every, 1)


@dataclass(frozen=True)
class CheckpointSettings:
    every: int = 0
    keep_last: int = 2
    resume: str | None = None

    def __post_init__(self) -> None:
        check_types(self)
        check_range("every", self.every, 0)
        check_range("keep_last", self.keep_last, 1)


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are read. On a 2-core machine with small samples, worker processes cost more than they save."""

    num_workers: int = 0
    pin_memory: bool = False
    prefetch_factor: int = 2

    def __post_init__(self) -> None:
        check_types(self)
        check_range("num_workers", self.num_workers, 0)
        check_range("prefetch_factor", self.prefetch_factor, 1)
