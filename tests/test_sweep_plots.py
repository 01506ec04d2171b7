"""Sweep pictures that read: a log axis for values spanning decades, a heatmap for a two-key grid, the Optuna
study's history and importance, legends beside the data, and a study that cannot be read costs only a note."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from ltxtune.sweeps.jobs import SWEEP_FILE, JobRecord
from ltxtune.sweeps.plots import objective_figure, objective_grid, val_loss_figure, x_scale
from ltxtune.sweeps.study import STUDY_FILE
from ltxtune.sweeps.summary import write_summary
from test_sweeps import assert_png, fake_job

DONE = {"status": "completed", "steps": 3, "wall_s": 1.0}
FAILED = {"status": "failed", "steps": 0, "wall_s": 0.1, "objective": math.inf, "error": "ValueError: x"}


def job(name: str, objective: float, status: str = "completed", **overrides: str) -> JobRecord:
    return JobRecord(job=name, overrides=overrides, status=status, objective=objective)


def finished(sweep_dir: Path, name: str, overrides: list[str], objective: float) -> None:
    fake_job(sweep_dir, name, overrides, {**DONE, "val/loss": objective, "objective": objective}, [1.5, objective])


def plot_list(sweep_dir: Path) -> str:
    return (sweep_dir / "summary.md").read_text().split("## Plots", 1)[1]


# ---------------------------------------------------------------------------------------------- axes


@pytest.mark.parametrize(
    ("values", "scale"),
    [
        ([1e-4, 1e-3, 1e-2], "log"),  # learning rates over two decades
        ([1.0, 10.0], "log"),  # exactly 10x
        ([4, 8, 16, 32, 64], "log"),
        ([5e-4, 1e-3, 2e-3, 4e-3], "linear"),  # 8x: sweep=lr_rank's learning rates
        ([4, 8, 16, 32], "linear"),
        ([0.3, 0.5, 0.7], "linear"),
        ([0.0, 0.5, 10.0], "linear"),  # zero has no log
        ([-1.0, 100.0], "linear"),
        ([], "linear"),
    ],
)
def test_the_x_axis_is_logarithmic_when_the_swept_values_span_ten_times_or_more(values, scale) -> None:
    assert x_scale(values) == scale


def test_objective_plot_of_a_learning_rate_sweep_has_a_log_axis_with_the_swept_values_as_ticks() -> None:
    jobs = [job(str(i), 1.0 - 0.1 * i, **{"optimizer.lr": lr}) for i, lr in enumerate(["1e-4", "1e-3", "1e-2"])]
    ax = objective_figure(jobs, "optimizer.lr", best=jobs[2]).axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1e-4", "1e-3", "1e-2"]  # as typed, not 10^-4

    thresholds = [job(str(i), 1.0, **{"strategy.mask_threshold": t}) for i, t in enumerate(["0.3", "0.5", "0.7"])]
    assert objective_figure(thresholds, "strategy.mask_threshold", best=None).axes[0].get_xscale() == "linear"


@pytest.mark.parametrize("draw", ["objective", "val_loss"])
def test_legends_sit_beside_the_axes_not_over_the_data(draw: str) -> None:
    jobs = [
        JobRecord(job=str(i), overrides={"lora.rank": r}, status="completed", objective=1.0, val_curve=[(0, 2.0)])
        for i, r in enumerate(["4", "8", "16"])
    ]
    fig = (
        objective_figure(jobs, "lora.rank", best=jobs[0])
        if draw == "objective"
        else val_loss_figure(jobs, ["lora.rank"])
    )
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


# ---------------------------------------------------------------------------------------------- heatmap


def test_grid_of_two_keys_sorts_numbers_numerically_and_keeps_each_cells_best_job() -> None:
    jobs = [
        job("0", 0.9, **{"optimizer.lr": "1e-3", "lora.rank": "16"}),
        job("1", 0.7, **{"optimizer.lr": "5e-4", "lora.rank": "16"}),
        job("2", math.inf, "failed", **{"optimizer.lr": "1e-3", "lora.rank": "4"}),
        job("3", math.inf, "incomplete", **{"optimizer.lr": "2e-3", "lora.rank": "4"}),
        job("4", 0.8, **{"optimizer.lr": "5e-4", "lora.rank": "4"}),
        job("5", 0.6, **{"optimizer.lr": "1e-3", "lora.rank": "16"}),  # ran the same cell again, better
    ]
    grid = objective_grid(jobs, col_key="optimizer.lr", row_key="lora.rank")
    assert grid.cols == ["5e-4", "1e-3", "2e-3"]
    assert grid.rows == ["4", "16"]  # 4 before 16: numbers, not strings
    values = grid.values()
    assert values[0][:1] == [0.8] and math.isnan(values[0][1]) and math.isnan(values[0][2])
    assert values[1][:2] == [0.7, 0.6] and math.isnan(values[1][2])
    assert grid.labels() == [["0.8", "failed", "incomplete"], ["0.7", "0.6", "not run"]]


def test_two_key_sweep_writes_a_heatmap_listed_in_the_summary(tmp_path: Path) -> None:
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"swept": ["optimizer.lr", "lora.rank"]}))
    for i, (lr, rank) in enumerate([("5e-4", "4"), ("1e-3", "4"), ("5e-4", "16")]):
        finished(tmp_path, str(i), [f"optimizer.lr={lr}", f"lora.rank={rank}"], 1.0 - 0.1 * i)
    fake_job(tmp_path, "3", ["optimizer.lr=1e-3", "lora.rank=16"], FAILED, [])

    write_summary(tmp_path)

    assert_png(tmp_path / "objective_heatmap.png")
    listed = plot_list(tmp_path)
    for name in (
        "objective_heatmap.png",
        "objective_vs_optimizer.lr.png",
        "objective_vs_lora.rank.png",
        "val_loss.png",
    ):
        assert f"[`{name}`]({name})" in listed


def test_one_key_sweep_draws_no_heatmap(tmp_path: Path) -> None:
    for i, lr in enumerate(["1e-4", "1e-2"]):
        finished(tmp_path, str(i), [f"optimizer.lr={lr}"], 1.0 - 0.1 * i)

    write_summary(tmp_path)

    assert not (tmp_path / "objective_heatmap.png").exists()
    assert "objective_vs_optimizer.lr.png): the objective against optimizer.lr (log axis)" in plot_list(tmp_path)


# ---------------------------------------------------------------------------------------------- Optuna


def make_study(db: Path, name: str) -> None:
    """A real 6-trial study in sqlite, one trial failed and one pruned, as a search leaves it."""
    import optuna

    study = optuna.create_study(study_name=name, storage=f"sqlite:///{db}", direction="minimize")
    for i in range(5):
        trial = study.ask()
        lr = trial.suggest_float("optimizer.lr", 1e-4, 1e-2, log=True)
        rank = trial.suggest_categorical("lora.rank", [4, 8])
        trial.report(2.0, 0)
        if i == 3:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, 1.0 + 0.1 * (rank == 8) + lr)
    pruned = study.ask()
    pruned.suggest_float("optimizer.lr", 1e-4, 1e-2, log=True)
    pruned.report(3.0, 0)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)


def test_optuna_search_gets_optunas_own_plots_of_its_study_pruned_trials_counted(tmp_path: Path) -> None:
    make_study(tmp_path / STUDY_FILE, "text_to_video")
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": {"study_name": "text_to_video"}}}))
    finished(tmp_path, "2025-01-01_00-00-00_0", ["optimizer.lr=0.001", "lora.rank=4"], 1.0)

    write_summary(tmp_path)

    assert_png(tmp_path / "optuna_history.png")
    assert_png(tmp_path / "optuna_importance.png")
    listed = plot_list(tmp_path)
    assert "[`optuna_history.png`](optuna_history.png)" in listed
    assert "[`optuna_importance.png`](optuna_importance.png)" in listed
    for name in ("optuna_val_loss.png", "optuna_timeline.png"):  # the reported val/loss curves, the workers
        assert_png(tmp_path / name)
        assert f"[`{name}`]({name})" in listed
    assert "(4 complete, 1 pruned, 1 fail)" in listed
    assert "skipped" not in listed


def test_a_corrupt_study_costs_a_note_not_the_summary(tmp_path: Path) -> None:
    garbage = b"not a database\n" * 100
    (tmp_path / STUDY_FILE).write_bytes(garbage)
    finished(tmp_path, "0", ["optimizer.lr=0.001"], 1.0)
    finished(tmp_path, "1", ["optimizer.lr=0.01"], 0.9)

    write_summary(tmp_path)

    notes = [line for line in plot_list(tmp_path).splitlines() if "Optuna" in line]
    assert len(notes) == 1 and notes[0].startswith("- Optuna plots skipped: cannot read the study in optuna.db")
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "objective_vs_optimizer.lr.png").is_file()
    assert (tmp_path / STUDY_FILE).read_bytes() == garbage  # read-only: the summary never writes the study
    assert not (tmp_path / "optuna_history.png").exists()
