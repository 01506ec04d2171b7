"""A wheel of ltxtune carries its configs: installed without a checkout around it, it trains from any directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SMALL, SMALL_SYNTHETIC


def pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pip {' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.slow
def test_a_wheel_trains_from_an_empty_directory(tmp_path: Path) -> None:
    # Built from a copy of what the wheel is made of: no stale build/ of the checkout can slip files in.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip("wheel", "--no-deps", "--quiet", ".", "-w", str(tmp_path / "dist"), cwd=source)
    [wheel] = (tmp_path / "dist").glob("ltxtune-*.whl")
    site = tmp_path / "site"
    pip("install", "--no-deps", "--quiet", "--target", str(site), str(wheel), cwd=tmp_path)

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed package, not the checkout's sources
    where = subprocess.run(
        [sys.executable, "-c", "import ltxtune; print(ltxtune.__file__)"], env=env, capture_output=True, text=True
    )
    assert Path(where.stdout.strip()).is_relative_to(site)
    args = [*SMALL, *SMALL_SYNTHETIC, "trainer.max_steps=2", "hydra.run.dir=run"]
    proc = subprocess.run(
        [str(site / "bin" / "ltxtune-train"), *args], cwd=empty, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    result = json.loads((empty / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2
    assert (empty / "run" / "lora.safetensors").is_file()

    # The module form composes the same configs.
    proc = subprocess.run(
        [sys.executable, "-m", "ltxtune.app.train", "experiment=i2v", "--cfg", "job"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "ltxtune.strategies.conditions.FirstFrame" in proc.stdout, proc.stderr[-2000:]
