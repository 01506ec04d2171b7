"""The README's commands, run as a newcomer types them (issue 18): each in a real subprocess."""

from __future__ import annotations

import json
import shlex
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


def readme_block(after: str) -> list[str]:
    """The commands of the first ```bash block after the line ``after`` in README.md."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(after) :].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def run_as_written(
    command: str, cwd: Path, run_dir: Path, shorter: list[str]
) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run a README ``python ...`` command from ``cwd`` and check it succeeds; its arguments and the process.

    The repo's scripts are found from anywhere; a training run goes to ``run_dir`` and, unless it is a dry
    run, is shortened by ``shorter``.
    """
    args = shlex.split(command)[1:]
    if args[0].endswith(".py"):
        args = [str(ROOT / args[0]), *args[1:]]
    if args[0].endswith("train.py"):
        args += [f"hydra.run.dir={run_dir}", *(shorter if "trainer.dry_run=true" not in args else [])]
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    return args, proc


@pytest.mark.slow
def test_real_checkpoint_section_commands_run_as_written(tmp_path: Path) -> None:
    """Each command of the README's tiny-checkpoint block, in order, in a fresh directory (training shortened)."""
    commands = readme_block("To try this path here")
    assert len(commands) == 6 and all(c.startswith("python ") for c in commands)
    shorter = ["trainer.max_steps=3", "validation.every=0", "validation_videos.enabled=false", "logger=none"]
    for i, command in enumerate(commands):
        args, proc = run_as_written(command, tmp_path, tmp_path / f"run{i}", shorter)
        if "trainer.dry_run=true" in args:
            assert "peak memory estimate" in proc.stdout
        elif args[0].endswith("train.py"):
            run_dir = tmp_path / f"run{i}"
            assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
            assert "`model=ltx2`" in (run_dir / "README.md").read_text()


@pytest.mark.slow
def test_ltx23_and_split_commands_run_as_written(tmp_path: Path) -> None:
    """The README's LTX-2.3 block (one file, then a split release), in order, in a fresh directory."""
    commands = readme_block("To try these here")
    assert len(commands) == 4 and all(c.startswith("python ") for c in commands)
    shorter = ["trainer.max_steps=2", "validation.every=0", "validation_videos.enabled=false", "logger=none"]
    for i, command in enumerate(commands):
        args, _ = run_as_written(command, tmp_path, tmp_path / f"run{i}", shorter)
        if args[0].endswith("train.py"):
            assert json.loads((tmp_path / f"run{i}" / "result.json").read_text())["status"] == "completed"
