"""Sweeps: every named sweep and search composes and validates, summaries tell the truth, and real multiruns
(basic, joblib, Optuna, submitit) leave one directory per job, a summary after each job, grouped wandb runs,
and a crashed sweep resumes without re-running the jobs that finished."""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_cfg
from ltxtune.sweeps.cli import main as summary_cli
from ltxtune.sweeps.jobs import SWEEP_FILE, completed_objective, group_name, swept_keys
from ltxtune.sweeps.summary import write_summary
from ltxtune.training.parts import build_parts

SHRINK = [
    "trainer.max_steps=3",
    "trainer.batch_size=2",
    "validation.every=0",
    "validation.sigmas=[0.5]",
    "data.num_samples=12",
    "data.val_samples=2",
]
PNG = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- helpers


def compose_with_hydra(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def grid_points(key: str, value: str) -> list[str]:
    """The override lines that probe a sweep value: each choice, or both ends of an interval."""
    override = OverridesParser.create().parse_override(f"{key}={value}")
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        return [f"{key}={sweep.start}", f"{key}={sweep.end}"]
    assert isinstance(sweep, ChoiceSweep), sweep
    return [f"{key}={v}" for v in sweep.list]


# One thread per job: parallel jobs on this 2-core machine (and other work beside the tests) oversubscribe
# torch's threads, and a tiny step then runs some 50 times slower.
ENV = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def run_train(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**ENV, "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 2000, path


def wandb_runs(root: Path) -> list[dict[str, str]]:
    """The run records of every offline ``.wandb`` file under ``root`` (a LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2 as pb

    runs = []
    for path in sorted(root.glob("**/wandb/offline-run-*/run-*.wandb")):
        for record in _wandb_records(path.read_bytes(), pb):
            if record.WhichOneof("record_type") == "run":
                run = record.run
                runs.append(
                    {
                        "dir": str(path.relative_to(root)),
                        "id": run.run_id,
                        "group": run.run_group,
                        "name": run.display_name,
                        "job_type": run.job_type,
                    }
                )
    return runs


def _wandb_records(data: bytes, pb) -> list:
    assert data[:4] == b":W&B"
    block, pos, chunks, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


# ---------------------------------------------------------------------------------------------- configs


SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize(("group", "name"), [("sweep", s) for s in SWEEPS] + [("hparams_search", s) for s in SEARCHES])
def test_every_point_of_every_named_sweep_and_search_is_a_valid_config(group: str, name: str, synthetic_root) -> None:
    cfg = compose_with_hydra(f"{group}={name}")
    assert cfg.hydra.mode.name == "MULTIRUN"  # `python train.py sweep=<name>` sweeps without --multirun
    params = cfg.hydra.sweeper.params
    assert params, f"{group}/{name} sweeps nothing"
    for key, value in params.items():
        for point in grid_points(key, str(value)):
            # The constructors check ranges and combinations: a misspelt key or an out-of-range value fails here.
            build_parts(compose_cfg(f"{group}={name}", point, data_root=synthetic_root))
    if group == "hparams_search":
        sweeper = cfg.hydra.sweeper
        assert sweeper._target_.endswith("OptunaSearch") and sweeper.direction == "minimize"
        assert sweeper.sampler == "tpe" and sweeper.pruner == "median"
        assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"
        assert cfg.hydra.runtime.choices.strategy == name  # one search per strategy family


def test_slurm_launcher_runs_one_process_per_gpu_into_the_sweep_dir() -> None:
    cfg = compose_with_hydra(
        "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4", "hydra.launcher.tasks_per_node=4"
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4
    assert launcher.submitit_folder.startswith(f"{cfg.hydra.sweep.dir}/.submitit/")  # beside the jobs


def test_swept_keys_come_from_the_command_line_and_the_sweeper_params() -> None:
    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"params": {"optimizer.lr": "1e-3,2e-3", "lora.rank": "tag(log, interval(4, 32))"}},
                "overrides": {"task": ["trainer.max_steps=3", "sampler=uniform,shifted_logit_normal", "+x.y=1,2"]},
            }
        }
    )
    assert swept_keys(config) == ["optimizer.lr", "lora.rank", "sampler", "x.y"]


# ---------------------------------------------------------------------------------------------- summary


def fake_job(sweep_dir: Path, job: str, overrides: list[str], result: dict | None, vals: list[float]) -> None:
    job_dir = sweep_dir / job
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))
    if result is not None:
        (job_dir / "result.json").write_text(json.dumps(result))
    lines = [{"step": 10 * i, "val/loss": v} for i, v in enumerate(vals)]
    lines.insert(1, {"step": 1, "train/loss": 1.0, "train/samples_per_s": 50.0})
    (job_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 2, "tr')


def test_summary_rebuilds_from_job_dirs_with_the_best_row_marked(tmp_path: Path, capsys) -> None:
    base = ["trainer.max_steps=20"]
    done = {"status": "completed", "steps": 20, "wall_s": 10.0, "train/loss": 0.5}
    fake_job(tmp_path, "0", [*base, "optimizer.lr=0.001"], {**done, "val/loss": 0.9, "objective": 0.9}, [1.2, 0.9])
    fake_job(tmp_path, "1", [*base, "optimizer.lr=0.01"], {**done, "val/loss": 0.7, "objective": 0.7}, [1.2, 0.7])
    failed = {"status": "failed", "steps": 0, "wall_s": 0.1, "objective": math.inf, "error": "ConfigError: x"}
    fake_job(tmp_path, "2", [*base, "optimizer.lr=0.1"], failed, [])
    fake_job(tmp_path, "10", [*base, "optimizer.lr=1.0"], None, [1.2])  # killed while running
    (tmp_path / "multirun.yaml").write_text("{}\n")  # Hydra writes it in every sweep directory

    summary_cli([str(tmp_path)])

    rows = read_csv(tmp_path / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2", "10"]  # job order, not string order
    assert [r["optimizer.lr"] for r in rows] == ["0.001", "0.01", "0.1", "1.0"]  # the key that varies is a column
    assert [r["status"] for r in rows] == ["completed", "completed", "failed", "incomplete"]
    assert [r["best"] for r in rows] == ["", "yes", "", ""]
    assert float(rows[1]["objective"]) == 0.7 and rows[2]["objective"] == "inf"
    assert float(rows[0]["steps/s"]) == 2.0 and float(rows[0]["samples/s"]) == 50.0
    assert rows[0]["overrides"] == "trainer.max_steps=20 optimizer.lr=0.001"
    markdown = (tmp_path / "summary.md").read_text()
    assert "Best: job `1`, objective 0.7 (`optimizer.lr=0.01`)" in markdown
    assert markdown == capsys.readouterr().out  # the command prints the table it wrote
    assert_png(tmp_path / "objective_vs_optimizer.lr.png")
    assert_png(tmp_path / "val_loss.png")


def test_summary_of_a_directory_that_is_not_a_sweep_points_at_the_sweeps_below(tmp_path: Path) -> None:
    done = {"status": "completed", "steps": 20, "wall_s": 10.0, "val/loss": 0.9, "objective": 0.9}
    for sweep in ("12-00-00", "13-30-00"):
        fake_job(tmp_path / sweep, "0", ["optimizer.lr=0.001"], done, [1.2, 0.9])
        (tmp_path / sweep / "multirun.yaml").write_text("{}\n")
    cmd = [sys.executable, "-m", "ltxtune.sweeps", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert f"{tmp_path} holds no sweep jobs" in message
    assert str(tmp_path / "12-00-00") in message and str(tmp_path / "13-30-00") in message
    assert not (tmp_path / "summary.csv").exists() and not (tmp_path / "summary.md").exists()


def test_summary_columns_follow_the_recorded_swept_keys(tmp_path: Path) -> None:
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"swept": ["lora.rank", "sampler"]}))
    result = {"status": "completed", "steps": 3, "wall_s": 1.0, "val/loss": 1.0, "objective": 1.0}
    fake_job(tmp_path, "0", ["lora.rank=4", "sampler=uniform"], result, [1.0])  # nothing varies yet

    write_summary(tmp_path)

    header = (tmp_path / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["job", "lora.rank", "sampler"]
    assert_png(tmp_path / "objective_vs_lora.rank.png")
    assert_png(tmp_path / "objective_vs_sampler.png")


def test_resume_skips_only_an_identical_completed_job(tmp_path: Path) -> None:
    cfg = compose_cfg("lora.rank=8")
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    result = {"status": "completed", "steps": 4, "objective": 0.25}
    (tmp_path / "result.json").write_text(json.dumps(result))

    assert completed_objective(tmp_path, cfg) == 0.25
    assert completed_objective(tmp_path, compose_cfg("lora.rank=8", "logger=wandb")) == 0.25
    assert completed_objective(tmp_path, compose_cfg("lora.rank=8", "checkpoint.resume=auto")) == 0.25
    assert completed_objective(tmp_path, compose_cfg("lora.rank=16")) is None  # another job: run it
    (tmp_path / "result.json").write_text(json.dumps({**result, "status": "failed"}))
    assert completed_objective(tmp_path, cfg) is None


# ---------------------------------------------------------------------------------------------- real sweeps


@pytest.mark.slow
def test_crashed_multirun_resumes_and_every_job_is_summarized_and_grouped(synthetic_root, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = [
        "--multirun",
        *SHRINK,
        f"data.root={synthetic_root}",
        "strategy.first_frame_p=0.1,0.5,0.9",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    # Crash the sweep (SIGKILL, as an OOM killer or a lost node would) once the first job has finished.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = sweep_dir / "0" / "result.json"
    deadline = time.monotonic() + 180
    while not (first.is_file() and (sweep_dir / "summary.csv").is_file()) and proc.poll() is None:
        assert time.monotonic() < deadline, "the first job did not finish"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = first.read_text()
    first_metrics = (sweep_dir / "0" / "metrics.jsonl").read_text()

    resumed = run_train(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"skipped {sweep_dir / '0'}" in resumed.stderr + resumed.stdout
    assert (sweep_dir / "0" / "result.json").read_text() == finished  # not trained again
    assert (sweep_dir / "0" / "metrics.jsonl").read_text() == first_metrics

    for job in ("0", "1", "2"):
        result = json.loads((sweep_dir / job / "result.json").read_text())
        assert result["status"] == "completed" and result["steps"] == 3
    rows = read_csv(sweep_dir / "summary.csv")
    assert [r["strategy.first_frame_p"] for r in rows] == ["0.1", "0.5", "0.9"]
    assert all(r["status"] == "completed" for r in rows) and sum(r["best"] == "yes" for r in rows) == 1
    best = min(rows, key=lambda r: float(r["objective"]))
    assert best["best"] == "yes"
    assert "| best |" in (sweep_dir / "summary.md").read_text()
    assert_png(sweep_dir / "objective_vs_strategy.first_frame_p.png")
    assert_png(sweep_dir / "val_loss.png")

    runs = wandb_runs(sweep_dir)
    jobs = [r for r in runs if r["job_type"] == "sweep-job"]
    group = group_name(sweep_dir)
    assert {r["group"] for r in runs} == {group}
    assert sorted({r["name"] for r in jobs}) == [f"strategy.first_frame_p={p}" for p in ("0.1", "0.5", "0.9")]
    assert len({r["id"] for r in jobs}) == 3  # one wandb run per job; a re-run job's replaces its killed attempt's
    assert len([r for r in jobs if r["dir"].startswith("0/")]) == 1  # the skipped job made no second run
    assert [r["name"] for r in runs if r["job_type"] == "sweep-summary"] == ["sweep-summary"]


@pytest.mark.slow
def test_joblib_sweep_keeps_every_job_in_the_summary_when_one_crashes(synthetic_root, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    # A job that raises (an unknown class, not a config error) fails in Hydra, which then skips
    # on_multirun_end: the summary written after each job must still hold both.
    done = run_train(
        "--multirun",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *SHRINK,
        f"data.root={synthetic_root}",
        "data._target_=ltxtune.data.synthetic.SyntheticData,ltxtune.no_such.Data",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert done.returncode != 0 and "ltxtune.no_such.Data" in done.stderr
    rows = read_csv(sweep_dir / "summary.csv")
    assert [(r["job"], r["status"], r["best"]) for r in rows] == [("0", "completed", "yes"), ("1", "failed", "")]
    assert rows[1]["objective"] == "inf"
    assert "ltxtune.no_such.Data" in json.loads((sweep_dir / "1" / "result.json").read_text())["error"]


@pytest.mark.slow
def test_optuna_search_survives_failed_trials_and_continues_its_sqlite_study(synthetic_root, tmp_path) -> None:
    import optuna

    sweep_dir = tmp_path / "study"
    args = [
        "hparams_search=text_to_video",
        "hydra.sweeper.seed=0",
        *SHRINK,
        f"data.root={synthetic_root}",
        f"hydra.sweep.dir={sweep_dir}",
        # a trial that crashes, to show that the study goes on past it
        "data._target_=choice(ltxtune.data.synthetic.SyntheticData,ltxtune.no_such.Data)",
    ]
    for n_trials in (2, 4):  # the same command again, asking for more trials: it continues the study
        done = run_train(*args, f"hydra.sweeper.n_trials={n_trials}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name="text_to_video", storage=f"sqlite:///{sweep_dir}/optuna.db")
    states = [t.state for t in study.trials]
    assert len(states) == 4
    assert optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.COMPLETE in states
    rows = read_csv(sweep_dir / "summary.csv")
    assert len(rows) == 4 and len({r["job"] for r in rows}) == 4  # no trial overwrote another's directory
    best = next(r for r in rows if r["best"] == "yes")
    assert float(best["objective"]) == pytest.approx(study.best_value)
    assert float(best["optimizer.lr"]) == pytest.approx(study.best_params["optimizer.lr"])
    assert_png(sweep_dir / "optuna_history.png")  # the study read back from the sweep's own sqlite file
    assert "[`optuna_history.png`](optuna_history.png)" in (sweep_dir / "summary.md").read_text()


@pytest.mark.slow
def test_submitit_local_job_with_two_processes_keeps_one_run_directory(synthetic_root, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    done = run_train(
        "--multirun",
        "hydra/launcher=submitit_local",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.timeout_min=5",
        *SHRINK,
        f"data.root={synthetic_root}",
        "lora.rank=4",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()) == ["0"]
    result = json.loads((sweep_dir / "0" / "result.json").read_text())
    assert result["status"] == "completed" and result["processes"] == 2
    assert len(set(result["rank_weight_checksums"])) == 1  # the two ranks trained one model
    assert [r["status"] for r in read_csv(sweep_dir / "summary.csv")] == ["completed"]
