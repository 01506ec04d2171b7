"""Optimizer and learning-rate schedule options, validated on construction and built against the parameters."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from ltxtune.errors import ConfigError, check_range


class AdamW:
    """torch's AdamW. ``fused``: its fused kernels (one launch for every parameter); otherwise torch picks, which
    on a GPU is its multi-tensor (foreach) path."""

    state_bytes = 8  # per trainable weight: two float32 moments (the dry run's memory estimate)

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        eps: float = 1e-8,
        fused: bool = False,
    ) -> None:
        check_range("lr", lr, 0.0, lo_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        check_range("eps", eps, 0.0, lo_open=True)
        if isinstance(betas, str) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise ConfigError("betas", betas, "two numbers in [0, 1], written [0.9, 0.999]")
        for i, beta in enumerate(betas):
            check_range(f"betas[{i}]", beta, 0.0, 1.0)
        self.lr, self.betas, self.weight_decay, self.eps = lr, tuple(betas), weight_decay, eps
        self.fused = fused

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, eps=self.eps, fused=self.fused or None
        )


class AdamW8bit(AdamW):
    """AdamW with 8-bit moments (bitsandbytes, CUDA only): a quarter of AdamW's optimizer memory.

    Optional: ``pip install -e ".[gpu]"``. Chosen over torchao's 8-bit optimizers because it is the one the
    LTX-2 and diffusers trainers use, so its behaviour on these models is known.
    """

    state_bytes = 2  # two 8-bit moments (block-wise scales not counted)

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise ConfigError(
                "optimizer", "adamw8bit", 'adamw, or install bitsandbytes (pip install -e ".[gpu]")'
            ) from exc
        if not torch.cuda.is_available():
            raise ConfigError("optimizer", "adamw8bit", "adamw on a machine without CUDA (bitsandbytes needs a GPU)")
        return bnb.optim.AdamW8bit(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, eps=self.eps)


class Schedule:
    """A multiplier on the base learning rate per optimizer step: linear warmup, then ``decay``.

    The scheduler is stepped once per optimizer step by the loop itself (never through accelerate), so the
    schedule ends exactly at ``trainer.max_steps`` whatever the number of processes.
    """

    def __init__(self, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> None:
        check_range("warmup_steps", warmup_steps, 0)
        check_range("min_lr_ratio", min_lr_ratio, 0.0, 1.0)
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio

    def decay(self, progress: float) -> float:
        """Multiplier at ``progress`` in [0, 1] of the post-warmup steps."""
        return 1.0

    def factor(self, step: int, total_steps: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * self.decay(progress)

    def build(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.factor(step, total_steps))


class Constant(Schedule):
    pass


class Linear(Schedule):
    def decay(self, progress: float) -> float:
        return 1.0 - progress


class Cosine(Schedule):
    def decay(self, progress: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * progress))
