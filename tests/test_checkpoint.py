"""Checkpoints resume the same run bit for bit, survive kills, refuse incompatible configs, and prune safely."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from conftest import ROOT, compose_cfg
from ltxtune.errors import ConfigError
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


def lora_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)


def assert_same_lora(a: Path, b: Path) -> None:
    ta, tb = lora_tensors(a), lora_tensors(b)
    assert ta.keys() == tb.keys()
    assert all(torch.equal(ta[k], tb[k]) for k in ta), "LoRA weights differ"


def metric_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(ln)["step"] for ln in lines if "train/loss" in ln]


# A run long enough to be killed in the middle: 120 steps take about 4 s after start-up.
STEPS = 120


def cli(run_dir: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "train.py", "logger=none", "trainer.batch_size=2", "validation.every=0",
        "validation.sigmas=[0.5]", "data.num_samples=12", "data.val_samples=2", "strategy.with_audio=true",
        f"trainer.max_steps={STEPS}", "checkpoint.every=10", f"data.root={data_root}", f"hydra.run.dir={run_dir}",
        *extra,
    ]  # fmt: skip


def start_and_wait_for(run_dir: Path, data_root: Path, checkpoint: str) -> subprocess.Popen:
    proc = subprocess.Popen(cli(run_dir, data_root), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / checkpoint).is_dir():
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory, synthetic_root) -> Path:
    """The same run, never interrupted."""
    run_dir = tmp_path_factory.mktemp("reference")
    subprocess.run(cli(run_dir, synthetic_root), cwd=ROOT, check=True, capture_output=True, timeout=300)
    return run_dir


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_same_lora_bit_for_bit(reference, synthetic_root, tmp_path) -> None:
    proc = start_and_wait_for(tmp_path, synthetic_root, "step_000030")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "lora.safetensors").exists(), "the run finished before it was killed"

    done = subprocess.run(cli(tmp_path, synthetic_root, "checkpoint.resume=auto"), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_same_lora(tmp_path / "lora.safetensors", reference / "lora.safetensors")
    assert metric_steps(tmp_path) == list(range(1, STEPS + 1))  # one line per step, none twice
    result = json.loads((tmp_path / "result.json").read_text())
    reference_result = json.loads((reference / "result.json").read_text())
    assert result["status"] == "completed" and result["val/loss"] == reference_result["val/loss"]


@pytest.mark.slow
def test_sigterm_checkpoints_at_the_step_boundary_and_exits_cleanly(reference, synthetic_root, tmp_path) -> None:
    proc = start_and_wait_for(tmp_path, synthetic_root, "step_000010")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert "SIGTERM: stopped at step" in out.decode()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["interrupted"] is True and result["status"] == "interrupted"
    stopped = result["steps"]
    assert (tmp_path / "checkpoints" / f"step_{stopped:06d}" / "state.pt").is_file()

    subprocess.run(cli(tmp_path, synthetic_root, "checkpoint.resume=auto"), cwd=ROOT, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    assert_same_lora(tmp_path / "lora.safetensors", reference / "lora.safetensors")


def test_resume_from_a_path_continues_in_that_run_directory(synthetic_root, tmp_path) -> None:
    first = tmp_path / "first"
    train(compose_cfg("trainer.max_steps=4", "checkpoint.every=2", data_root=synthetic_root), first)
    checkpoint = first / "checkpoints" / "step_000002"
    assert checkpoint.is_dir()
    cfg = compose_cfg("trainer.max_steps=6", f"checkpoint.resume={checkpoint}", data_root=synthetic_root)
    train(cfg, tmp_path / "second")
    assert not (tmp_path / "second" / "lora.safetensors").exists()
    assert metric_steps(first) == [1, 2, 3, 4, 5, 6]


def test_resume_with_another_rank_or_strategy_is_refused(synthetic_root, tmp_path) -> None:
    train(compose_cfg("checkpoint.every=2", data_root=synthetic_root), tmp_path)
    other = compose_cfg("lora.rank=8", "strategy.first_frame_p=0.5", "checkpoint.resume=auto", data_root=synthetic_root)
    with pytest.raises(ConfigError) as info:
        train(other, tmp_path)
    message = str(info.value)
    assert message.startswith("checkpoint.resume=")
    assert "lora.rank: 16 -> 8" in message and "strategy.first_frame_p: 0.1 -> 0.5" in message


def test_only_the_newest_checkpoints_are_kept(synthetic_root, tmp_path) -> None:
    train(compose_cfg("trainer.max_steps=9", "checkpoint.every=2", "checkpoint.keep_last=2", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step_000006", "step_000008"]
    for name in kept:
        assert (tmp_path / "checkpoints" / name / "lora.safetensors").is_file()


def test_a_half_written_checkpoint_is_ignored(synthetic_root, tmp_path) -> None:
    from ltxtune.training.checkpoint import resolve_resume

    train(compose_cfg("checkpoint.every=2", data_root=synthetic_root), tmp_path)
    (tmp_path / "checkpoints" / "step_000003").mkdir()  # a kill between mkdir and the state file
    (tmp_path / "checkpoints" / ".tmp-step_000004").mkdir()
    assert resolve_resume("auto", tmp_path).name == "step_000002"


def test_init_from_lora_starts_where_the_file_left_off(synthetic_root, tmp_path) -> None:
    train(compose_cfg("lora.rank=4", "lora.alpha=8", data_root=synthetic_root), tmp_path)
    saved = lora_tensors(tmp_path / "lora.safetensors")
    parts = build_parts(compose_cfg("lora.rank=4", "lora.alpha=8", f"lora.init_from={tmp_path / 'lora.safetensors'}",
                                    data_root=synthetic_root))  # fmt: skip
    model = parts.model.build(0, torch.device("cpu"))
    parts.lora.apply(model)
    again = parts.lora.state_dict(model.transformer)
    assert all(torch.equal(again[k], saved[k]) for k in saved)

    wrong = compose_cfg("lora.rank=8", f"lora.init_from={tmp_path / 'lora.safetensors'}", data_root=synthetic_root)
    with pytest.raises(ConfigError, match=r"lora.init_from=.*rank 8"):
        train(wrong, tmp_path / "wrong")
    assert os.path.exists(tmp_path / "lora.safetensors")


def test_an_overwriting_run_in_a_used_directory_starts_a_fresh_metrics_file(synthetic_root, tmp_path) -> None:
    for overwrite in ("false", "true"):
        train(compose_cfg(f"trainer.overwrite={overwrite}", data_root=synthetic_root), tmp_path)
    assert metric_steps(tmp_path) == [1, 2, 3, 4]
