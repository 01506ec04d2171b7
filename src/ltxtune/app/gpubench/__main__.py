"""The LTX-2 training step on one GPU: ltxtune's real step on the full 19B model, its variants, one table.

    python -m ltxtune.app.gpubench --out outputs/gpubench [--blocks 48] [--budget-s 450] [--variants ckpt,...]
    python -m ltxtune.app.gpubench --smoke --out outputs/gpubench-smoke   # tiny model, CPU, a few steps

Builds LTX-2 19B (``model=random19b``: ltx-core's classes and default config, random bf16 weights made on the
GPU) through ``build_training``, and times ``Trainer.train_step`` on synthetic batches at users' shapes for each
variant in ``variants.VARIANTS``, in that order, until the time budget is spent. Writes ``gpubench.json`` and
``gpubench.md`` into ``--out``. A variant that runs out of GPU memory is recorded as such and the run goes on.
"""

from __future__ import annotations

import argparse
import statistics
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from ltxtune.app.gpubench.variants import VARIANTS, BenchSettings, Variant

if TYPE_CHECKING:  # they import torch, which waits until the arguments are read: --help stays quick
    from ltxtune.app.gpubench.measure import MatmulRate, VariantResult
    from ltxtune.app.gpubench.report import BenchReport


def parse(argv: list[str] | None = None) -> BenchSettings:
    parser = argparse.ArgumentParser(prog="python -m ltxtune.app.gpubench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/gpubench"), help="where the JSON and table go")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU, a few steps: checks the paths")
    parser.add_argument("--blocks", type=int, default=48, help="transformer blocks (full width): 48 is LTX-2 19B")
    parser.add_argument("--steps", type=int, help="timed steps per variant (default 10; 3 with --smoke)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3; 1 with --smoke)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="no variant starts once it would end past it")
    parser.add_argument("--variants", help=f"comma-separated, of: {', '.join(v.name for v in VARIANTS)}")
    parser.add_argument("--data-root", type=Path, help="where the synthetic clips are written once")
    args = parser.parse_args(argv)
    names = tuple(args.variants.split(",")) if args.variants else tuple(v.name for v in VARIANTS)
    if unknown := sorted(set(names) - {v.name for v in VARIANTS}):
        parser.error(f"unknown variants {unknown}; known: {', '.join(v.name for v in VARIANTS)}")
    if args.blocks < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--blocks and --steps must be >= 1")
    smoke = args.smoke
    return BenchSettings(
        out=args.out,
        data_root=args.data_root or Path(".ltxtune") / ("gpubench-smoke" if smoke else "gpubench"),
        smoke=smoke,
        blocks=args.blocks,
        steps=args.steps or (3 if smoke else 10),
        warmup=args.warmup if args.warmup is not None else (1 if smoke else 3),
        budget_s=args.budget_s,
        names=names,
        named=bool(args.variants),
    )


def main(argv: list[str] | None = None) -> None:
    settings = parse(argv)
    import torch

    if not settings.smoke and not torch.cuda.is_available():
        raise SystemExit("python -m ltxtune.app.gpubench needs a CUDA GPU; --smoke runs the tiny model on the CPU")
    json_file, table = run(settings).write(settings.out)
    print(f"wrote {json_file} and {table}", flush=True)


def run(settings: BenchSettings) -> BenchReport:
    """Every chosen variant in order, each one measured or recorded as skipped, out of memory or failed.

    A smoke run steps on one CPU thread: its figures mean nothing, and on a shared machine threads that wait for
    each other's cores made it four times slower."""
    import torch

    threads = torch.get_num_threads()
    if settings.smoke:
        torch.set_num_threads(1)
    try:
        return run_variants(settings)
    finally:
        torch.set_num_threads(threads)


def run_variants(settings: BenchSettings) -> BenchReport:
    import torch

    from ltxtune.app.gpubench.measure import matmul_rate, release
    from ltxtune.app.gpubench.report import BenchReport

    started = time.perf_counter()
    device = torch.device("cpu" if settings.smoke else "cuda")
    rate = matmul_rate(device, n=256 if settings.smoke else 8192, repeats=10 if settings.smoke else 50)
    name = "CPU" if settings.smoke else torch.cuda.get_device_name(device)
    print(f"{name}: bf16 matmul {rate.n}^3 at {rate.flops_per_s / 1e12:.4g} TFLOP/s", flush=True)
    results, variants = [], settings.variants()
    for i, variant in enumerate(variants, 1):
        durations = [r.wall_s for r in results if r.status == "ok"]
        print(f"[{i}/{len(variants)}] {variant.name} ({settings.shapes[variant.shape]}): {variant.what}", flush=True)
        result = run_variant(variant, settings, rate, started, durations)
        results.append(result)
        print(f"    {summary(result)}", flush=True)
    release(device)
    return BenchReport(
        device=name,
        torch=torch.__version__,
        smoke=settings.smoke,
        blocks=settings.depth,
        text_tokens=settings.text_tokens,
        matmul=rate,
        steps=settings.steps,
        warmup=settings.warmup,
        budget_s=settings.budget_s,
        wall_s=time.perf_counter() - started,
        variants=tuple(results),
    )


def run_variant(
    variant: Variant, settings: BenchSettings, rate: MatmulRate, started: float, durations: list[float]
) -> VariantResult:
    """``measure``'s result, or why there is none (not supported, the budget, out of memory, a failure).
    ``durations``: the wall seconds of the variants measured so far, which say whether one more fits the budget."""
    import torch

    from ltxtune.app.gpubench.measure import VariantResult, measure, release
    from ltxtune.errors import ConfigError

    shape = str(settings.shapes[variant.shape])

    def without(status: str, reason: str) -> VariantResult:
        return VariantResult(variant.name, variant.what, shape, status, reason, wall_s=time.perf_counter() - begun)

    begun = time.perf_counter()
    if variant.unsupported:
        return without("skipped", variant.unsupported)
    if settings.smoke and variant.smoke_skip and not settings.named:
        return without("skipped", variant.smoke_skip)
    spent, expected = begun - started, statistics.mean(durations) if durations else 0.0
    if spent + expected > settings.budget_s:
        return without("skipped", f"time budget: {spent:.0f} of {settings.budget_s:.0f} s spent, a variant takes"
                                  f" about {expected:.0f} s")  # fmt: skip
    before = release(torch.device("cpu" if settings.smoke else "cuda"))
    try:
        return measure(variant, settings, rate, before)
    except torch.cuda.OutOfMemoryError as exc:
        return without("oom", str(exc).splitlines()[0])
    except ConfigError as exc:  # this machine cannot run it (torchao missing, say)
        return without("skipped", str(exc))
    except Exception as exc:  # the table says which variant failed and why; the traceback goes to stderr
        traceback.print_exc()
        return without("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def summary(result: VariantResult) -> str:
    if result.status != "ok":
        return f"{result.status}: {result.reason}"
    peak = "" if result.peak_allocated_gib is None else f", peak {result.peak_allocated_gib:.3g} GiB"
    return (
        f"{1000 * result.step_s:.1f} ms/step, {result.tokens_per_s:,.0f} tokens/s, MFU {result.mfu:.1%}{peak}"
        f" (estimate {result.estimate_gib:.3g} GiB), built in {result.build_s:.1f} s"
    )


if __name__ == "__main__":
    main()
