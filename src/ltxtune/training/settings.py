"""The run's own scalar settings (``trainer``, ``checkpoint``, ``validation``), checked before anything is built."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ltxtune.errors import ConfigError, check_choice, check_range

# A setting's annotation -> the Python types its value may have (a YAML int is a fine float).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "str | None": (str, type(None)),
}


def check_types(settings: object) -> None:
    """Refuse a value of the wrong type (``trainer.batch_size=2.5``) before it fails deep in a run."""
    for f in dataclasses.fields(settings):
        value, allowed = getattr(settings, f.name), _TYPES.get(str(f.type))
        if allowed is None:
            continue
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            names = " or ".join(
                "null" if t is type(None) else t.__name__ for t in allowed if t is not int or str(f.type) == "int"
            )
            raise ConfigError(f.name, value, f"a value of type {names}")


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
class ValidationSettings:
    """Validation loss at fixed sigmas with fixed noise, so that two runs compare on the same draws."""

    every: int = 20
    sigmas: Sequence[float] = field(default=(0.1, 0.3, 0.5, 0.7, 0.9))
    seed: int = 1234
    strategy: Mapping[str, Any] = field(default_factory=dict)  # read by parts.evaluation_strategy
    offload_optimizer: bool = False  # the optimizer state waits in host memory while validation runs (GPU)

    def __post_init__(self) -> None:
        check_types(self)
        check_range("every", self.every, 0)
        if not self.sigmas:
            raise ConfigError("sigmas", list(self.sigmas), "a non-empty list of noise levels in [0, 1]")
        for sigma in self.sigmas:
            check_range("sigmas", sigma, 0.0, 1.0)


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
