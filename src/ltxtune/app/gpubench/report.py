"""The benchmark's result: one JSON file and one markdown table, with the goals the figures are held to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ltxtune.app.gpubench.measure import MatmulRate, VariantResult

# The figures the GPU step is held to (docs/performance.md, "GPU step").
MFU_GOAL = 0.45
PEAK_GOAL_GIB = 48.0
ESTIMATE_TOLERANCE = 0.10
LOOP_OVERHEAD_GOAL = 0.03
MAIN, BARE = "ckpt", "ckpt-bare"  # the LoRA step with checkpointing at 512x512x121, and its bare loop


@dataclass(frozen=True)
class Goal:
    what: str
    target: str
    measured: str
    held: bool | None  # None: this run does not measure it (a smoke run, fewer blocks, a variant not run)


@dataclass(frozen=True)
class BenchReport:
    device: str
    torch: str
    smoke: bool
    blocks: int
    text_tokens: int
    matmul: MatmulRate
    steps: int
    warmup: int
    budget_s: float
    wall_s: float
    variants: tuple[VariantResult, ...]

    def ok(self, name: str) -> VariantResult | None:
        """The variant ``name`` when it ran to the end."""
        return next((v for v in self.variants if v.name == name and v.status == "ok"), None)

    @property
    def loop_overhead(self) -> float | None:
        """How much longer ltxtune's step takes than the bare loop's, timed in alternation on one model."""
        bare = self.ok(BARE)
        return bare.ltxtune_step_s / bare.step_s - 1 if bare and bare.ltxtune_step_s else None

    def goals(self) -> list[Goal]:
        """Each goal with this run's figure; ``held`` is None where the run does not measure it (a smoke run's
        figures are no GPU's; the memory goal is for all 48 blocks)."""
        main = self.ok(MAIN)
        gpu = main is not None and not self.smoke
        mfu = main.mfu if main else None
        peak = main.peak_allocated_gib if main else None
        error = main.estimate_gib / peak - 1 if main and peak and main.estimate_gib else None
        overhead = self.loop_overhead
        return [
            Goal(f"MFU of `{MAIN}`", f">= {MFU_GOAL:.0%}", _pct(mfu), mfu >= MFU_GOAL if gpu else None),
            Goal(
                f"peak allocated of `{MAIN}`, 48 blocks",
                f"<= {PEAK_GOAL_GIB:.0f} GiB",
                _num(peak, " GiB"),
                peak <= PEAK_GOAL_GIB if gpu and peak is not None and self.blocks == 48 else None,
            ),
            Goal(
                f"dry-run estimate against the peak of `{MAIN}`",
                f"within {ESTIMATE_TOLERANCE:.0%}",
                _pct(error),
                abs(error) <= ESTIMATE_TOLERANCE if gpu and error is not None else None,
            ),
            Goal(
                f"ltxtune's step against the bare loop's (alternating, `{BARE}`)",
                f"<= {LOOP_OVERHEAD_GOAL:.0%} slower",
                _pct(overhead),
                overhead <= LOOP_OVERHEAD_GOAL if gpu and overhead is not None else None,
            ),
        ]

    def to_json(self) -> str:
        return json.dumps(
            {**asdict(self), "loop_overhead": self.loop_overhead, "goals": [asdict(g) for g in self.goals()]},
            indent=1,
        )

    def markdown(self) -> str:
        model = f"LTX-2 19B, {self.blocks} blocks" if not self.smoke else "LTX-2's architecture at a tiny width"
        lines = [
            "# LTX-2 training step" + (" (smoke run: CPU, tiny model)" if self.smoke else ""),
            "",
            f"{self.device}, torch {self.torch}. {model}, random bf16 weights; LoRA rank 32 on the attention"
            f" projections; batch 1, video with its audio, {self.text_tokens} text tokens.",
            f"Measured bf16 matmul rate ({self.matmul.n}^3): {_num(self.matmul.flops_per_s / 1e12)} TFLOP/s."
            f" Median of {self.steps} steps after {self.warmup} of warm-up; {self.wall_s:.0f} s of a"
            f" {self.budget_s:.0f} s budget.",
            "",
            "| variant | what | clip | tokens | step (ms) | tokens/s | TFLOP/s | MFU | peak alloc (GiB) |"
            " peak reserved (GiB) | estimate (GiB) | estimate / peak | note |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *(_row(v) for v in self.variants),
            "",
            "FLOPs are what torch's FlopCounterMode counts on one step, less the forward that gradient checkpointing"
            " recomputes; MFU is their rate over the measured matmul rate. A quantized base's own kernels may go"
            " uncounted: compare its step time. Peaks are the CUDA allocator's over the steps, weights included;"
            " the estimate is `trainer.dry_run=true`'s for the same config.",
            "",
            "| goal | target | measured | held |",
            "|---|---|---|---|",
            *(f"| {g.what} | {g.target} | {g.measured} | {_yes(g.held)} |" for g in self.goals()),
        ]
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        json_file, table = out / "gpubench.json", out / "gpubench.md"
        json_file.write_text(self.to_json())
        table.write_text(self.markdown())
        return json_file, table


def _row(v: VariantResult) -> str:
    ratio = v.estimate_gib / v.peak_allocated_gib if v.estimate_gib and v.peak_allocated_gib else None
    ms = v.step_s * 1000 if v.step_s is not None else None
    cells = [
        v.name, v.what, v.shape, str(v.tokens or ""), _num(ms), _num(v.tokens_per_s, digits=0), _num(v.tflops_per_s),
        _pct(v.mfu), _num(v.peak_allocated_gib), _num(v.peak_reserved_gib), _num(v.estimate_gib), _num(ratio, digits=2),
        "" if v.status == "ok" else v.status,
    ]  # fmt: skip
    if v.reason:
        cells[-1] = f"{v.status}: {v.reason}".replace("|", "/")
    elif v.ltxtune_step_s and v.step_s:
        ours = v.ltxtune_step_s
        cells[-1] = f"ltxtune's step beside it: {1000 * ours:,.1f} ms ({ours / v.step_s - 1:+.1%})"
    return "| " + " | ".join(cells) + " |"


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    """``value`` with ``digits`` decimals; a small one (a smoke run's) with two significant digits."""
    if value is None:
        return "-"
    return f"{value:.2g}{unit}" if 0 < abs(value) < 10**-digits * 10 else f"{value:,.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _yes(held: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[held]
