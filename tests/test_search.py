"""Optuna searches on today's Optuna: pruning from val/loss, asynchronous workers on one shared study, a killed
search that continues where it stopped, and an install without the old sweeper's pins."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from conftest import ROOT, compose_cfg
from test_sweeps import ENV, read_csv

SEARCH = [
    "hparams_search=inpainting",
    "trainer.batch_size=2",
    "scheduler.warmup_steps=0",
    "validation.every=1",
    "validation.sigmas=[0.5]",
    "validation_videos.enabled=false",
    "data.num_samples=12",
    "data.val_samples=2",
    "logger.mode=disabled",
]


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *SEARCH, *args]


def load(storage: str, name: str = "inpainting"):
    import optuna

    if "://" not in storage:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(storage))
    return optuna.load_study(study_name=name, storage=storage)


# ---------------------------------------------------------------------------------------------- pruning


def test_a_run_stopped_at_a_validation_ends_pruned_with_its_metrics_and_checkpoint(synthetic_root, tmp_path) -> None:
    from ltxtune.training.run import train

    seen: list[tuple[int, float]] = []

    def prune_at_two(step: int, loss: float) -> bool:
        seen.append((step, loss))
        return step >= 2

    cfg = compose_cfg(
        "trainer.max_steps=6", "validation.every=1", "validation_videos.enabled=false", data_root=synthetic_root
    )
    result = train(cfg, tmp_path / "run", on_validation=prune_at_two)
    assert result.status == "pruned" and result.steps == 2  # stopped at the validation that said so, not at 6
    assert [s for s, _ in seen] == [0, 1, 2] and all(math.isfinite(v) for _, v in seen)
    assert result.val_loss == pytest.approx(seen[-1][1]) and math.isinf(result.objective)
    assert (tmp_path / "run" / "checkpoints").is_dir() and any((tmp_path / "run" / "checkpoints").iterdir())
    assert not (tmp_path / "run" / "lora.safetensors").exists()  # no final weights for a pruned trial


# A trial's job in two processes (several GPUs per job): rank 0 alone reports to the study, as the search's job does.
TWO_RANK_JOB = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from conftest import compose_cfg
from ltxtune.training.run import train
run_dir, data = Path(sys.argv[2]), Path(sys.argv[3])
cfg = compose_cfg("logger=none", "trainer.max_steps=6", "trainer.batch_size=2", "validation.every=1",
                  "validation.sigmas=[0.5]", "validation_videos.enabled=false", data_root=data)
rank = os.environ["RANK"]
result = train(cfg, run_dir, on_validation=(lambda step, loss: step >= 2) if rank == "0" else None)
(run_dir.parent / f"rank{rank}.json").write_text(json.dumps({"status": result.status, "steps": result.steps}))
"""


@pytest.mark.slow
def test_a_pruned_two_process_trial_ends_pruned_on_every_rank(synthetic_root, tmp_path) -> None:
    job = tmp_path / "job.py"
    job.write_text(TWO_RANK_JOB)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(job)]
    args = [str(ROOT / "tests"), str(tmp_path / "run"), str(synthetic_root)]
    proc = subprocess.run(
        [*run, *args], capture_output=True, text=True, timeout=600, env={**ENV, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks == [{"status": "pruned", "steps": 2}] * 2  # rank 1 never heard the pruner, yet knows why it stopped
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "pruned"


@pytest.mark.slow
def test_pruned_trials_stop_early_and_the_worker_takes_the_next_one(synthetic_root, tmp_path) -> None:
    sweep_dir = tmp_path / "search"
    # Every val/loss is above 0: the threshold pruner stops each trial at its first validation after step 2.
    cmd = search_cmd(
        f"hydra.sweep.dir={sweep_dir}",
        f"data.root={synthetic_root}",
        "trainer.max_steps=8",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.pruner=threshold",
        "hydra.sweeper.pruner_args={upper: 0.0, n_warmup_steps: 2}",
    )
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    study = load(f"sqlite:///{sweep_dir}/optuna.db")
    assert [t.state.name for t in study.trials] == ["PRUNED"] * 3  # one worker went on after each pruned trial
    assert all(max(t.intermediate_values) == 2 for t in study.trials)  # val/loss reported at steps 0, 1, 2
    rows = read_csv(sweep_dir / "summary.csv")
    assert [r["status"] for r in rows] == ["pruned"] * 3 and all(r["steps"] == "2" for r in rows)
    summary = (sweep_dir / "summary.md").read_text()
    assert summary.count("| pruned |") == 3 and "(3 pruned)" in summary  # the table and the plots
    assert (sweep_dir / "optuna_val_loss.png").is_file()  # Optuna's curves: each trial ends at step 2
    # The live view (docs/sweeps.md) reads the same storage: each trial Pruned, with its val/loss by step.
    trials = dashboard_json(f"sqlite:///{sweep_dir}/optuna.db", "/api/studies/1")["trials"]
    assert [t["state"] for t in trials] == ["Pruned"] * 3
    assert all([v["step"] for v in t["intermediate_values"]] == [0, 1, 2] for t in trials)


def dashboard_json(storage: str, path: str) -> dict:
    """What optuna-dashboard's server answers at ``path`` for ``storage`` (its WSGI app, called in-process)."""
    import io
    import json
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(wsgi(storage)(environ, lambda code, headers, *_: status.append(code)))
    assert status == ["200 OK"], (status, body[:500])
    return json.loads(body)


# ---------------------------------------------------------------------------------------------- workers


@pytest.mark.slow
def test_two_searches_on_one_journal_study_never_run_the_same_trial(synthetic_root, tmp_path) -> None:
    journal = tmp_path / "shared" / "study.journal"  # Optuna's journal storage: one file on a shared disk
    procs = []
    for machine in ("a", "b"):  # two commands, as two machines would run them, sharing the study
        cmd = search_cmd(
            f"hydra.sweep.dir={tmp_path / machine}",
            f"data.root={synthetic_root}",
            "trainer.max_steps=2",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.pruner=none",
            f"hydra.sweeper.storage={journal}",
        )
        procs.append(
            subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        )
    for proc in procs:
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
    study = load(str(journal))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    runs = [p.parent for m in ("a", "b") for p in (tmp_path / m).glob("*/result.json")]
    assert len(runs) == 4  # each trial ran once, in one of the two searches
    trial_ids = [(p / ".hydra" / "hydra.yaml").read_text().split("LTXTUNE_TRIAL_ID: '")[1][:3] for p in runs]
    assert len(set(trial_ids)) == 4


def test_a_trial_whose_worker_stopped_beating_is_failed_and_queued_again_once() -> None:
    import optuna

    from ltxtune.sweeps.search import HEARTBEAT_ATTR, budget_left, fail_stale

    study = optuna.create_study()
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    trial = study.ask(space)
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, 1000.0)
    assert budget_left(study.trials, 3) == (2, 1)
    assert fail_stale(study, stale_after_s=60, max_retry=1, now=1030.0) == []  # still beating
    assert fail_stale(study, stale_after_s=60, max_retry=1, now=1100.0) == [0]
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "WAITING"]
    assert budget_left(study.trials, 3) == (3, 0)  # the lost trial does not count: its retry will
    retry = study.ask(space)
    assert retry.number == 1 and retry.params == trial.params  # the queued retry comes first, same parameters
    study._storage.set_trial_system_attr(retry._trial_id, HEARTBEAT_ATTR, 1000.0)
    assert fail_stale(study, stale_after_s=60, max_retry=1, now=1100.0) == [1]
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]  # retried once already: not queued again


@pytest.mark.slow
def test_a_killed_search_run_again_continues_the_study_and_loses_nothing(synthetic_root, tmp_path) -> None:
    sweep_dir = tmp_path / "search"
    cmd = search_cmd(
        f"hydra.sweep.dir={sweep_dir}",
        f"data.root={synthetic_root}",
        "trainer.max_steps=6",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.heartbeat_s=1",  # a trial silent for 5 s lost its worker
    )
    first = subprocess.Popen(
        cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not list(sweep_dir.glob("*/metrics.jsonl")):  # the first trial is training
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the whole search, mid-trial
    first.wait()
    killed = load(f"sqlite:///{sweep_dir}/optuna.db").trials
    assert [t.state.name for t in killed] == ["RUNNING"]

    again = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(f"sqlite:///{sweep_dir}/optuna.db").trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert retry.params == killed[0].params  # the lost trial ran again, with its parameters
    statuses = sorted(r["status"] for r in read_csv(sweep_dir / "summary.csv"))
    assert statuses == ["completed", "completed", "incomplete"]  # the killed attempt is listed, never hidden


# ---------------------------------------------------------------------------------------------- install


def test_the_install_asks_for_optuna_5_without_the_old_sweepers_pins() -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    assert not {"hydra-optuna-sweeper", "sqlalchemy", "alembic"} & set(requirements)
    optuna = requirements["optuna"].specifier
    assert optuna.contains("5.1.0") and not optuna.contains("2.10.1")
    tested = dict(
        line.split("==")
        for line in (ROOT / "requirements/tested.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert "hydra-optuna-sweeper" not in tested and tested["optuna"].startswith("5.")
    assert int(tested["SQLAlchemy" if "SQLAlchemy" in tested else "sqlalchemy"].split(".")[0]) >= 2
