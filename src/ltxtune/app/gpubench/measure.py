"""Measuring one variant: build it with ``build_training``, warm it up, count one step's FLOPs, time the steps,
read the allocator's peaks; and the device's own bf16 matmul rate, which MFU is measured against."""

from __future__ import annotations

import gc
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ltxtune.app.estimate import estimate
from ltxtune.app.gpubench.loops import Step, bare_step, ltxtune_step
from ltxtune.app.gpubench.variants import BenchSettings, Variant, variant_config
from ltxtune.training.build import build_training, make_accelerator
from ltxtune.training.loop import Trainer
from ltxtune.training.optim import AdamW
from ltxtune.training.parts import build_parts
from ltxtune.training.plan import plan_run
from ltxtune.training.run import compat_facts

GIB = 2**30
_BLOCK = re.compile(r"(^|\.)transformer_blocks\.\d+$")


@dataclass(frozen=True)
class VariantResult:
    """One variant's figures; ``status`` is ``ok``, ``oom``, ``skipped`` or ``failed`` (then ``reason`` says why).

    ``flops``: one step's model FLOPs (what FlopCounterMode counted, less the forward that gradient checkpointing
    recomputes); ``executed_flops``: with it. ``mfu``: ``flops / step_s`` over the measured matmul rate. Memory
    in GiB: the allocator's peaks over the steps (weights included), and the dry run's estimate for the config.
    """

    name: str
    what: str
    shape: str
    status: str
    reason: str = ""
    tokens: int = 0  # video + audio tokens per step (what the blocks process)
    text_tokens: int = 0
    steps: int = 0
    step_s: float | None = None  # median
    step_s_min: float | None = None
    step_s_max: float | None = None
    tokens_per_s: float | None = None
    flops: float | None = None
    executed_flops: float | None = None
    tflops_per_s: float | None = None
    mfu: float | None = None
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    estimate_gib: float | None = None
    ltxtune_step_s: float | None = None  # a bare loop's variant: ltxtune's step, alternating with it on one model
    allocated_before_gib: float | None = None  # what an earlier variant left allocated (0 unless it leaked)
    build_s: float | None = None
    wall_s: float = 0.0


@dataclass(frozen=True)
class MatmulRate:
    """The device's measured rate on ``n^3`` matrix products in ``dtype``: what MFU is a fraction of."""

    n: int
    dtype: str
    flops_per_s: float


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, repeats: int) -> MatmulRate:
    """bf16 ``n x n @ n x n`` products per second, after three warm-up products, times their FLOPs."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return MatmulRate(n, "bfloat16", 2 * n**3 * repeats / (time.perf_counter() - start))


def count_flops(step: Step, trainer: Trainer, recompute: bool) -> tuple[float, float]:
    """(model, executed) FLOPs of one step of ``step``. Compiled blocks run eagerly for the count (the counter
    sees aten ops); with ``recompute`` (gradient checkpointing) the blocks' forward, counted on a forward
    alone, is what backward ran twice."""
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        step()
    executed = float(counter.get_total_flops())
    if not recompute:
        return executed, executed
    batch = trainer.stream.next()
    with torch.no_grad(), torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as forward:
        trainer.losses(batch, trainer.sampler, trainer.generator)
    blocks = sum(sum(ops.values()) for name, ops in forward.get_flop_counts().items() if _BLOCK.search(name))
    return executed - blocks, executed


def timed(step: Step, device: torch.device) -> float:
    """Seconds of one step, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def alternating(steps: dict[str, Step], count: int, device: torch.device, per_round: int = 2) -> dict[str, list[float]]:
    """``count`` timed steps of each loop, in rounds of ``per_round`` each, so that whatever else the machine
    does (clocks, other processes) weighs on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    while any(len(t) < count for t in times.values()):
        for name, step in steps.items():
            for _ in range(min(per_round, count - len(times[name]))):
                times[name].append(timed(step, device))
    return times


def loops(variant: Variant, trainer: Trainer, optimizer: AdamW) -> dict[str, Step]:
    """The variant's step first; a bare loop's variant also times ltxtune's on the same model and batches."""
    if not variant.bare:
        return {"main": ltxtune_step(trainer)}
    return {"main": bare_step(trainer, optimizer), "ltxtune": ltxtune_step(trainer)}


def memory(device: torch.device) -> dict[str, float | None]:
    """The allocator's peaks since the last reset, in GiB (none on a CPU)."""
    if device.type != "cuda":
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {
        "peak_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
        "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB,
    }


def release(device: torch.device) -> float | None:
    """Free what the last variant left (its model, compiled graphs, cached blocks); GiB still allocated."""
    torch._dynamo.reset()
    gc.collect()
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated(device) / GIB


def measure(variant: Variant, settings: BenchSettings, rate: MatmulRate, before: float | None) -> VariantResult:
    """Build ``variant`` as a run would, then time ``settings.steps`` steps after ``settings.warmup``."""
    started = time.perf_counter()
    cfg = variant_config(variant, settings)
    parts = build_parts(cfg)
    parts.data.prepare()
    plan = plan_run(parts, compat_facts(cfg), processes=1)
    estimated = estimate(cfg).peak_gb
    accelerator = make_accelerator(parts.trainer)
    device = accelerator.device
    trainer = build_training(parts, plan, run_dir(settings, variant), accelerator, schedule_steps=100_000).trainer
    steps = loops(variant, trainer, parts.optimizer)
    build_s = time.perf_counter() - started
    if device.type == "cuda":  # the steps' peak: a quantized base is bf16 for a moment while it is built
        torch.cuda.reset_peak_memory_stats(device)
    for step in steps.values():
        for _ in range(settings.warmup):
            step()
    flops, executed = count_flops(steps["main"], trainer, parts.trainer.gradient_checkpointing)
    timings = alternating(steps, settings.steps, device)
    times, median = timings["main"], statistics.median(timings["main"])
    tokens = (plan.tokens.video + plan.tokens.audio) * parts.trainer.batch_size
    return VariantResult(
        name=variant.name,
        what=variant.what,
        shape=str(settings.shapes[variant.shape]),
        status="ok",
        tokens=tokens,
        text_tokens=plan.tokens.text,
        steps=len(times),
        step_s=median,
        step_s_min=min(times),
        step_s_max=max(times),
        tokens_per_s=tokens / median,
        flops=flops,
        executed_flops=executed,
        tflops_per_s=flops / median / 1e12,
        mfu=flops / median / rate.flops_per_s,
        **memory(device),
        estimate_gib=estimated,
        ltxtune_step_s=statistics.median(timings["ltxtune"]) if "ltxtune" in timings else None,
        allocated_before_gib=before,
        build_s=build_s,
        wall_s=time.perf_counter() - started,
    )


def run_dir(settings: BenchSettings, variant: Variant) -> Path:
    """Where the trainer would write (it writes nothing while only stepping)."""
    return settings.data_root / "runs" / variant.name
