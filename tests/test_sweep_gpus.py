"""A sweep on one machine gives each parallel job its own GPU (hydra/launcher=gpus), checked on the CPU with
fake device ids: what each job was given, one run directory per job, and no GPU shared by jobs running at once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ROOT
from ltxtune.sweeps import devices
from test_sweeps import ENV, SHRINK, run_train, wandb_runs

LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


@pytest.fixture
def slot_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sweep directory with two one-GPU slots, and this process holding none yet."""
    (tmp_path / devices.SLOTS_FILE).write_text(json.dumps({"slots": [["a"], ["b"]]}))
    monkeypatch.setattr(devices, "_held", None)
    return tmp_path


def test_gpus_are_cut_into_slots_of_a_job_each() -> None:
    assert devices.cut_slots(["0", "1", "2"], 1) == [["0"], ["1"], ["2"]]
    assert devices.cut_slots(["0", "1", "2", "3", "4"], 2) == [["0", "1"], ["2", "3"]]


def test_a_worker_takes_a_slot_no_live_process_holds_and_keeps_it(slot_file: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path; from ltxtune.sweeps import devices; "
         f"print(devices.claim_slot(Path({str(slot_file)!r})), flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "['a']"  # another worker, still running, holds the first GPU
        assert devices.claim_slot(slot_file) == ["b"]
        assert devices.claim_slot(slot_file) == ["b"]  # the next job of this worker: the same GPU
    finally:
        holder.communicate("\n", timeout=30)
        devices._held[0].close()
    devices._held = None
    assert devices.claim_slot(slot_file) == ["a"]  # the ended worker's GPU is free again


def test_more_parallel_jobs_than_gpus_stop_before_any_job(tmp_path: Path) -> None:
    done = run_train(
        "--multirun", "hydra/launcher=gpus", "hydra.callbacks.gpus.devices=[0,1]", "hydra.launcher.n_jobs=3",
        "lora.rank=4,8,16", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: hydra.launcher.n_jobs=3: the jobs that run at once, each on its own GPU, so 1 ... 2 (GPUs 0 1): "
        "set hydra.launcher.n_jobs=2"
    )
    assert not list((tmp_path / "sweep").glob("*/result.json"))


def test_no_gpu_to_share_out_says_how_to_list_them(tmp_path: Path) -> None:
    # No GPU visible, as on this machine, whatever machine runs the test.
    args = ["--multirun", "hydra/launcher=gpus", "hydra.launcher.n_jobs=2", "lora.rank=4,8"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path,
        env={**ENV, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: hydra.callbacks.gpus.devices=auto: no GPU to give the jobs"), last


def job_span(job_dir: Path) -> tuple[datetime, datetime, str]:
    """When the job took its GPU (its log line), when it wrote its result, and the GPU it was given."""
    line = next(ln for ln in (job_dir / "train.log").read_text().splitlines() if "CUDA_VISIBLE_DEVICES=" in ln)
    start = datetime.strptime(line[1:24], LOG_TIME).timestamp()
    end = (job_dir / "result.json").stat().st_mtime
    return start, end, line.rsplit("=", 1)[1]


@pytest.mark.slow
def test_each_parallel_job_of_a_sweep_trains_on_its_own_gpu(synthetic_root: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    done = run_train(
        "--multirun", "hydra/launcher=gpus", "hydra.callbacks.gpus.devices=[3,5]", "hydra.launcher.n_jobs=2",
        "lora.rank=4,8,16", "logger=none", "validation_videos.enabled=false", *SHRINK,
        f"data.root={synthetic_root}", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0", "1", "2"]  # one run directory per job
    given = {}
    for job in jobs:
        result = json.loads((job / "result.json").read_text())
        assert result["status"] == "completed" and (job / "lora.safetensors").is_file()
        start, end, logged = job_span(job)
        assert result["visible_devices"] == logged in ("3", "5")  # what the job ran with is what it was given
        given[job.name] = (start, end, logged)

    overlapping = [
        (a, b) for a in given for b in given
        if a < b and given[a][0] < given[b][1] and given[b][0] < given[a][1]
    ]  # fmt: skip
    assert overlapping, given  # the jobs did run side by side
    assert all(given[a][2] != given[b][2] for a, b in overlapping), given


@pytest.mark.slow
def test_a_job_with_two_gpus_trains_with_one_process_on_each(synthetic_root: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    done = run_train(
        "--multirun", "hydra/launcher=gpus", "hydra.callbacks.gpus.devices=[0,1,2,3]", "hydra.callbacks.gpus.per_job=2",
        "hydra.launcher.n_jobs=2", "lora.rank=4,8", "logger=wandb", "validation_videos.enabled=false", *SHRINK,
        f"data.root={synthetic_root}", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    spans = {}
    for job in ("0", "1"):
        result = json.loads((sweep_dir / job / "result.json").read_text())
        assert result["status"] == "completed" and result["processes"] == 2  # a rank on each of its GPUs
        first, second = result["rank_weight_checksums"]
        assert first == second
        spans[job] = job_span(sweep_dir / job)
        assert result["visible_devices"] == spans[job][2] in ("0,1", "2,3")
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    (a_start, a_end, a_gpus), (b_start, b_end, b_gpus) = spans["0"], spans["1"]
    if a_start < b_end and b_start < a_end:  # side by side: never on a shared GPU
        assert a_gpus != b_gpus
    # Each job is its own wandb run, grouped by the sweep and named by its overrides, as with one GPU per job.
    names = sorted(r["name"] for r in wandb_runs(sweep_dir) if r["job_type"] == "sweep-job")
    assert names == ["lora.rank=4", "lora.rank=8"]
