"""The README's commands, run as a newcomer types them (issue 18): each in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SMALL, SMALL_SYNTHETIC


def train_py(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_cfg_job_resolve_prints_the_values_a_run_uses(tmp_path: Path) -> None:
    proc = train_py("--cfg", "job", "--resolve", "model.caption_channels=48", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "${" not in proc.stdout
    config = yaml.safe_load(proc.stdout)
    assert config["data"]["caption_dim"] == 48  # an interpolation of model.caption_channels, resolved
    assert config["logger"]["mode"] in ("offline", "online", "disabled")


@pytest.mark.slow
def test_resume_by_path_reports_the_run_it_continued(synthetic_root: Path, tmp_path: Path) -> None:
    small = [*SMALL, *SMALL_SYNTHETIC, f"data.root={synthetic_root}"]
    first = tmp_path / "outputs" / "my-run"
    done = train_py(*small, "checkpoint.every=2", f"hydra.run.dir={first}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    fresh = tmp_path / "outputs" / "2026-12-02" / "10-00-00"  # where Hydra would put a new run
    checkpoint = first / "checkpoints" / "step_000002"
    resumed = train_py(*small, f"checkpoint.resume={checkpoint}", f"hydra.run.dir={fresh}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"run directory: {first}" in resumed.stdout
    assert json.loads((first / "result.json").read_text())["status"] == "completed"
    assert not fresh.exists()  # no stray empty run directory is left behind


@pytest.mark.slow
def test_a_run_says_what_it_does_between_steps(synthetic_root: Path, tmp_path: Path) -> None:
    args = [*SMALL, *SMALL_SYNTHETIC, f"data.root={synthetic_root}", "validation.every=2", "checkpoint.every=2"]
    proc = train_py(*args, "validation_videos.num_prompts=1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    for step in (0, 2, 4):
        assert f"step {step}: validation loss" in out and f"step {step}: validation clips" in out
    assert "step 2: saving a checkpoint" in out
    assert f"saving {tmp_path / 'run' / 'lora.safetensors'}" in out
    assert out.index("building the model") < out.index("step 0: validation loss")
