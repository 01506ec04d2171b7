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
from ltxtune.errors import ConfigError, TrainingError
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
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"  # refused before any write


def test_only_the_newest_checkpoints_are_kept_and_the_final_state_is_the_newest(synthetic_root, tmp_path) -> None:
    train(compose_cfg("trainer.max_steps=9", "checkpoint.every=2", "checkpoint.keep_last=2", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step_000008", "step_000009"]
    for name in kept:
        assert (tmp_path / "checkpoints" / name / "lora.safetensors").is_file()


def test_a_half_written_checkpoint_is_ignored(synthetic_root, tmp_path) -> None:
    from ltxtune.training.checkpoint import resolve_resume

    train(compose_cfg("checkpoint.every=2", data_root=synthetic_root), tmp_path)
    (tmp_path / "checkpoints" / "step_000005").mkdir()  # a kill between mkdir and the state file
    (tmp_path / "checkpoints" / ".tmp-step_000006").mkdir()
    assert resolve_resume("auto", tmp_path).name == "step_000004"


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


# ---------------------------------------------------------------------------------------------- finished runs


def snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a run directory with its bytes and modification time."""
    return {str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.rglob("*")
            if p.is_file() and p.name != ".ltxtune.lock"}  # fmt: skip


def test_a_resume_with_fewer_steps_than_its_run_is_refused_and_changes_nothing(synthetic_root, tmp_path) -> None:
    train(compose_cfg("trainer.max_steps=6", "checkpoint.every=2", data_root=synthetic_root), tmp_path)
    before = snapshot(tmp_path)
    shorter = compose_cfg("trainer.max_steps=4", "checkpoint.resume=auto", data_root=synthetic_root)
    with pytest.raises(ConfigError) as info:
        train(shorter, tmp_path)
    message = str(info.value)
    assert message.startswith("trainer.max_steps=4 is not allowed: at least 6 ")
    assert "step_000006" in message and "Raise trainer.max_steps" in message
    assert snapshot(tmp_path) == before
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 6


def test_overwrite_removes_the_replaced_run_and_pruning_and_resume_see_only_the_new_one(
    synthetic_root, tmp_path, capsys
) -> None:
    every = ("checkpoint.every=2", "checkpoint.keep_last=2", "scheduler.warmup_steps=1")
    train(compose_cfg("trainer.max_steps=8", *every, data_root=synthetic_root), tmp_path)
    assert (tmp_path / "samples" / "step_000008").is_dir() and (tmp_path / "README.md").is_file()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "samples" / "picked.txt").write_text("mine too")

    train(compose_cfg("trainer.max_steps=4", "trainer.seed=1", "trainer.overwrite=true", *every,
                      data_root=synthetic_root), tmp_path)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000002", "step_000004"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["picked.txt", "step_000000", "step_000004"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and metric_steps(tmp_path) == [1, 2, 3, 4]
    assert "for 4 steps" in (tmp_path / "README.md").read_text()

    capsys.readouterr()
    train(compose_cfg("trainer.max_steps=6", "trainer.seed=1", "checkpoint.resume=auto", *every,
                      data_root=synthetic_root), tmp_path)  # fmt: skip
    out = capsys.readouterr().out
    assert "continuing the completed run (4 steps) from step 4 to 6" in out
    assert "note: the learning-rate schedule is now sized for 6 steps: step 5 trains at lr" in out
    assert metric_steps(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_a_failed_overwrite_leaves_nothing_of_the_replaced_run_to_resume(synthetic_root, tmp_path) -> None:
    train(compose_cfg("trainer.max_steps=4", "checkpoint.every=2", data_root=synthetic_root), tmp_path)
    with pytest.raises(ConfigError, match=r"lora\.init_from"):  # stops after the claim, before any checkpoint
        train(compose_cfg("trainer.overwrite=true", f"lora.init_from={tmp_path / 'none.safetensors'}",
                          data_root=synthetic_root), tmp_path)  # fmt: skip
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "lora.safetensors").exists()
    with pytest.raises(TrainingError, match="no checkpoint to resume from"):
        train(compose_cfg("checkpoint.resume=auto", data_root=synthetic_root), tmp_path)


def test_a_finished_run_continued_from_4_to_6_steps_equals_a_straight_6_step_run(
    synthetic_root, tmp_path, capsys
) -> None:
    constant = ("scheduler=constant", "checkpoint.every=0")
    train(compose_cfg("trainer.max_steps=6", *constant, data_root=synthetic_root), tmp_path / "straight")
    finished = tmp_path / "finished"
    train(compose_cfg("trainer.max_steps=4", *constant, data_root=synthetic_root), finished)
    assert [p.name for p in (finished / "checkpoints").iterdir()] == ["step_000004"]  # the final state

    capsys.readouterr()
    more = compose_cfg("trainer.max_steps=6", *constant, f"checkpoint.resume={finished}", data_root=synthetic_root)
    result = train(more, tmp_path / "elsewhere")
    out = capsys.readouterr().out
    assert "continuing the completed run (4 steps) from step 4 to 6" in out
    assert "learning-rate schedule" not in out  # a constant schedule: the rate does not move
    assert result.run_dir == finished and result.status == "completed" and result.steps == 6
    assert_same_lora(finished / "lora.safetensors", tmp_path / "straight" / "lora.safetensors")
    assert metric_steps(finished) == [1, 2, 3, 4, 5, 6]
    assert json.loads((finished / "result.json").read_text())["steps"] == 6


def test_a_finished_run_asked_for_the_steps_it_has_has_nothing_to_do(synthetic_root, tmp_path) -> None:
    from conftest import SMALL, SMALL_SYNTHETIC

    train(compose_cfg(data_root=synthetic_root), tmp_path)
    before = snapshot(tmp_path)
    args = [sys.executable, "train.py", *SMALL, *SMALL_SYNTHETIC, f"data.root={synthetic_root}",
            f"hydra.run.dir={tmp_path}", "checkpoint.resume=auto"]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == [
        f"nothing to do: the run in {tmp_path} completed its 4 steps (trainer.max_steps=4); its files are "
        "unchanged. Raise trainer.max_steps to continue it"
    ]
    after = snapshot(tmp_path)
    ltxtune_files = {name for name in before if not name.startswith(".hydra") and not name.endswith(".log")}
    assert {name: after[name] for name in ltxtune_files} == {name: before[name] for name in ltxtune_files}
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
