"""The GPU step benchmark's smoke mode: the tiny model on the CPU through every variant path a CPU can run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ltxtune.app.gpubench.__main__ import main
from ltxtune.app.gpubench.variants import VARIANTS


def test_smoke_run_reports_every_variant_measured_or_why_not(tmp_path: Path) -> None:
    out = tmp_path / "out"
    main(["--smoke", "--out", str(out), "--data-root", str(tmp_path / "data")])

    report = json.loads((out / "gpubench.json").read_text())
    rows = {row["name"]: row for row in report["variants"]}
    assert list(rows) == [v.name for v in VARIANTS]
    for row in rows.values():
        if row["status"] == "ok":
            assert row["step_s"] > 0 and row["tokens_per_s"] > 0 and row["mfu"] > 0, row
            assert row["estimate_gib"] > 0 and row["steps"] == 3, row
        else:
            assert row["status"] == "skipped" and row["reason"], row
    # Every path runs on the CPU but two: checkpointing every k blocks does not exist, compiling takes minutes.
    assert {n for n, r in rows.items() if r["status"] != "ok"} == {"ckpt-every-2", "ckpt-compile"}
    assert "not supported" in rows["ckpt-every-2"]["reason"]
    # Model FLOPs leave out the forward that checkpointing recomputes; the larger clip costs more.
    assert rows["ckpt"]["flops"] == rows["no-ckpt"]["flops"] < rows["ckpt"]["executed_flops"]
    assert rows["ckpt-768x512"]["tokens"] > rows["ckpt"]["tokens"]
    assert rows["ckpt-768x512"]["flops"] > rows["ckpt"]["flops"]
    # ltxtune's step is timed beside the bare loop's, on the same model: the overhead goal's figure.
    bare = rows["ckpt-bare"]
    assert report["loop_overhead"] == bare["ltxtune_step_s"] / bare["step_s"] - 1
    assert [goal["held"] for goal in report["goals"]] == [None] * 4  # a CPU's figures hold no GPU goal

    table = (out / "gpubench.md").read_text()
    for name, row in rows.items():
        [line] = [line for line in table.splitlines() if line.startswith(f"| {name} |")]
        shown = f"{1000 * row['step_s']:,.1f}" if row["status"] == "ok" else f"skipped: {row['reason'][:40]}"
        assert shown in line, line


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_two_full_width_blocks_step_on_the_gpu_and_leave_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    names = "ckpt,ckpt-bare,ckpt-fused-adamw,ckpt-int8,ckpt-fp8"
    main(["--blocks", "2", "--steps", "2", "--warmup", "1", "--variants", names, "--out", str(out),
          "--data-root", str(tmp_path / "data")])  # fmt: skip

    rows = json.loads((out / "gpubench.json").read_text())["variants"]
    assert [row["name"] for row in rows] == names.split(",")
    for row in rows:
        assert row["status"] == "ok", row
        assert 0 < row["mfu"] < 1 and row["peak_allocated_gib"] > 0 and row["estimate_gib"] > 0, row
        assert row["allocated_before_gib"] < 0.5, row  # the variant before it was freed
    # The 8-bit bases hold the block linears in half the memory.
    peaks = {row["name"]: row["peak_allocated_gib"] for row in rows}
    assert peaks["ckpt-int8"] < peaks["ckpt"] and peaks["ckpt-fp8"] < peaks["ckpt"]
