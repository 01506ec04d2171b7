"""Sweeps people can trust: a summary after every job, resume without re-running, and each job's wandb identity.

A sweep directory holds one directory per job (Hydra's ``hydra.sweep.dir`` / ``hydra.sweep.subdir``). After
every job, ``SweepSummary`` (a Hydra callback in ``conf/train.yaml``) rebuilds from the job directories:

- ``summary.csv`` and ``summary.md``: one row per job (swept values, status, objective, losses, speed, wall
  time), the best row marked;
- ``objective_vs_<key>.png`` for each swept key and ``val_loss.png`` (validation loss curves of every job).

``python -m ltxtune.sweeps <sweep dir> [--wandb]`` rebuilds the same files (and logs the wandb table).
The summary is written in ``on_job_end`` because Hydra skips ``on_multirun_end`` when any job fails.
Importing this module costs only Hydra and the standard library: matplotlib and wandb load when needed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
import re
import secrets
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ltxtune.files import exclusive_lock

log = logging.getLogger("ltxtune")

SWEEP_FILE = "sweep.json"  # the swept keys, written when the sweep starts: jobs and summaries read it
# Keys that never change what a finished job computed: a resumed sweep may change them and still skip it
# (say, add checkpoint.resume=auto so that the killed jobs continue from their checkpoints).
IGNORED_FOR_RESUME = ("logger", "checkpoint.resume")


@dataclass(frozen=True)
class JobRecord:
    """One job of a sweep, as its directory tells it (a job still running or killed has status ``incomplete``)."""

    job: str
    overrides: dict[str, str]
    status: str
    objective: float
    val_loss: float | None = None
    train_loss: float | None = None
    steps: int = 0
    steps_per_s: float | None = None
    samples_per_s: float | None = None
    wall_s: float | None = None
    val_curve: list[tuple[int, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- overrides


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """A job's overrides ``["+a.b=1", "sampler=uniform"]`` -> ``{"a.b": "1", "sampler": "uniform"}``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.key_or_group: o.get_value_element_as_str() for o in parsed}


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a multirun varies: sweeps on the command line and in ``hydra.sweeper.params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params")
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(lines)
    return list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))


def read_swept(sweep_dir: Path) -> list[str] | None:
    path = sweep_dir / SWEEP_FILE
    return json.loads(path.read_text())["swept"] if path.is_file() else None


def job_sweep_dir() -> Path:
    """The current job's sweep directory, absolute (the job's output dir less its subdir)."""
    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir).parents[len(Path(hc.sweep.subdir).parts) - 1]


def group_name(sweep_dir: Path) -> str:
    """A sweep's wandb group: its last two path parts (``multirun/2025-01-01/12-00-00`` -> ``2025-01-01/12-00-00``)."""
    return "/".join(sweep_dir.absolute().parts[-2:])


def job_identity() -> tuple[str, str] | None:
    """``(group, name)`` for wandb in a sweep job: the sweep's group, the job's swept overrides; else ``None``."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hc = HydraConfig.get()
    sweep_dir = job_sweep_dir()
    overrides = parse_overrides(list(hc.overrides.task))
    swept = read_swept(sweep_dir)
    named = [f"{k}={v}" for k, v in overrides.items() if swept is None or k in swept]
    return group_name(sweep_dir), ",".join(named) or f"job{hc.job.num}"


# ---------------------------------------------------------------------------------------------- resume


def completed_objective(run_dir: Path, config: DictConfig) -> float | None:
    """The objective of an earlier, completed run of exactly this config in ``run_dir``; ``None`` otherwise.

    A resumed sweep skips such a job. The saved ``config.yaml`` must match the resolved config (the logger
    and ``checkpoint.resume`` aside), so a different command reusing the directory re-runs the job instead of
    reporting stale numbers.
    """
    result_path, saved_path = run_dir / "result.json", run_dir / "config.yaml"
    if not (result_path.is_file() and saved_path.is_file()):
        return None
    result = json.loads(result_path.read_text())
    if result.get("status") != "completed":
        return None
    saved = yaml.safe_load(saved_path.read_text())
    current = yaml.safe_load(OmegaConf.to_yaml(config, resolve=True))
    for key in IGNORED_FOR_RESUME:
        _drop(saved, key)
        _drop(current, key)
    return float(result["objective"]) if saved == current else None


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.get(part) if isinstance(tree, dict) else None
    if isinstance(tree, dict):
        tree.pop(leaf, None)


# ---------------------------------------------------------------------------------------------- summary


def find_jobs(sweep_dir: Path) -> list[Path]:
    """Every job directory under ``sweep_dir`` (Hydra saves ``.hydra/overrides.yaml`` before a job starts)."""
    dirs = {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    return sorted(dirs, key=lambda p: _natural_key(p.relative_to(sweep_dir).as_posix()))


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def read_job(job_dir: Path, sweep_dir: Path) -> JobRecord:
    overrides = parse_overrides(yaml.safe_load((job_dir / ".hydra/overrides.yaml").read_text()) or [])
    name = job_dir.relative_to(sweep_dir).as_posix()
    result_path = job_dir / "result.json"
    if not result_path.is_file():
        return JobRecord(job=name, overrides=overrides, status="incomplete", objective=math.inf)
    result = json.loads(result_path.read_text())
    records = _read_metrics(job_dir / "metrics.jsonl")
    speeds = [r["train/samples_per_s"] for r in records if r.get("train/samples_per_s") is not None]
    steps, wall = int(result.get("steps", 0)), result.get("wall_s")
    return JobRecord(
        job=name,
        overrides=overrides,
        status=result.get("status", "failed"),
        objective=float(result.get("objective", math.inf)),
        val_loss=result.get("val/loss"),
        train_loss=result.get("train/loss"),
        steps=steps,
        steps_per_s=steps / wall if wall and steps else None,
        samples_per_s=statistics.median(speeds) if speeds else None,
        wall_s=wall,
        val_curve=[(r["step"], r["val/loss"]) for r in records if r.get("val/loss") is not None],
    )


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    # The last line of a job killed mid-write may be cut short: keep what parses.
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def best_job(jobs: list[JobRecord]) -> JobRecord | None:
    """The completed job with the lowest finite objective (the sweepers minimize the validation loss)."""
    done = [j for j in jobs if j.status == "completed" and math.isfinite(j.objective)]
    return min(done, key=lambda j: j.objective) if done else None


def summary_keys(jobs: list[JobRecord], swept: list[str] | None) -> list[str]:
    """The columns of swept values: the recorded swept keys, else the override keys whose values differ."""
    if swept is not None:
        return swept
    keys = dict.fromkeys(k for j in jobs for k in j.overrides)
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


COLUMNS = ("status", "objective", "val/loss", "train/loss", "steps", "steps/s", "samples/s", "wall_s", "best")


def write_summary(sweep_dir: Path) -> list[JobRecord]:
    """Rebuild ``summary.csv``, ``summary.md`` and the plots of ``sweep_dir`` from its job directories."""
    sweep_dir = Path(sweep_dir)
    with exclusive_lock(sweep_dir / ".summary.lock"):  # parallel jobs finish together
        jobs = [read_job(d, sweep_dir) for d in find_jobs(sweep_dir)]
        keys = summary_keys(jobs, read_swept(sweep_dir))
        best = best_job(jobs)
        header = ["job", *keys, *COLUMNS]
        rows = [_row(j, keys, j is best) for j in jobs]
        csv_rows = [[_csv_cell(v) for v in row] + [_all_overrides(j)] for row, j in zip(rows, jobs, strict=True)]
        _write_atomic(sweep_dir / "summary.csv", _csv_text([*header, "overrides"], csv_rows))
        _write_atomic(sweep_dir / "summary.md", _markdown(sweep_dir, header, rows, best, keys))
        plot_summary(sweep_dir, jobs, keys)
    return jobs


def _row(job: JobRecord, keys: list[str], is_best: bool) -> list[Any]:
    measured = (job.objective, job.val_loss, job.train_loss, job.steps, job.steps_per_s, job.samples_per_s, job.wall_s)
    return [job.job, *(job.overrides.get(k, "") for k in keys), job.status, *measured, "yes" if is_best else ""]


def _all_overrides(job: JobRecord) -> str:
    return " ".join(f"{k}={v}" for k, v in job.overrides.items())


def _csv_cell(value: Any) -> str:
    """Full precision in the CSV (it is the machine-readable record); rounding is for the Markdown table."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _md_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"  # inf stays inf
    return str(value).replace("|", "\\|")


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _markdown(
    sweep_dir: Path, header: list[str], rows: list[list[Any]], best: JobRecord | None, keys: list[str]
) -> str:
    lines = [f"# Sweep {sweep_dir}", ""]
    if best is None:
        lines.append("No job has completed with a finite objective yet.")
    else:
        chosen = " ".join(f"{k}={v}" for k, v in best.overrides.items() if k in keys or not keys)
        lines.append(f"Best: job `{best.job}`, objective {_md_cell(best.objective)} (`{chosen}`).")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_summary(sweep_dir: Path, jobs: list[JobRecord], keys: list[str]) -> None:
    """``objective_vs_<key>.png`` per swept key and ``val_loss.png``; failed jobs are counted, not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [j for j in jobs if math.isfinite(j.objective)]
    best = best_job(jobs)
    for key in keys:
        fig, ax = plt.subplots(figsize=(6, 4))
        points = [(j.overrides[key], j.objective) for j in done if key in j.overrides]
        numeric = _as_numbers([x for x, _ in points])
        if numeric is not None:
            xs = numeric
            if xs and min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")  # learning rates and the like span decades
        else:
            labels = list(dict.fromkeys(x for x, _ in points))
            xs = [labels.index(x) for x, _ in points]
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.scatter(xs, [y for _, y in points])
        if best is not None and key in best.overrides and points:
            best_x = xs[[x for x, _ in points].index(best.overrides[key])]
            ax.scatter([best_x], [best.objective], marker="*", s=200, color="tab:red", label=f"best ({best.job})")
            ax.legend(fontsize="small")
        ax.set_xlabel(key)
        ax.set_ylabel("objective (val/loss)")
        ax.set_title(f"{len(points)} of {len(jobs)} jobs with a finite objective")
        ax.grid(alpha=0.3)
        _save(fig, sweep_dir / f"objective_vs_{_file_safe(key)}.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for job in jobs:
        if job.val_curve:
            steps, losses = zip(*job.val_curve, strict=True)
            label = ",".join(f"{k}={job.overrides.get(k, '')}" for k in keys) or job.job
            ax.plot(steps, losses, marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("val/loss")
    ax.set_title("validation loss")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    _save(fig, sweep_dir / "val_loss.png")


def _file_safe(key: str) -> str:
    return re.sub(r"[^-\w.]", "_", key)


def _as_numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------- wandb


def log_wandb_table(sweep_dir: Path, logger: Mapping[str, Any]) -> None:
    """One more wandb run in the sweep's group holding the summary table and the best job's numbers."""
    if not str(logger.get("_target_", "")).endswith("WandbLogger") or logger.get("mode") == "disabled":
        return
    import wandb

    with (sweep_dir / "summary.csv").open() as f:
        rows = list(csv.reader(f))
    os.environ.setdefault("WANDB_SILENT", "true")
    # One summary run per sweep: a resumed sweep updates it instead of adding another.
    id_file = sweep_dir / "wandb_summary_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    id_file.write_text(run_id)
    run = wandb.init(
        id=run_id,
        resume="allow",
        project=logger.get("project"),
        entity=logger.get("entity"),
        mode=logger.get("mode"),
        dir=str(sweep_dir),
        group=logger.get("group") or group_name(sweep_dir),
        name="sweep-summary",
        job_type="sweep-summary",
        reinit="finish_previous",
    )
    try:
        run.log({"sweep/summary": wandb.Table(columns=rows[0], data=rows[1:])})
        best = next((r for r in rows[1:] if r[rows[0].index("best")] == "yes"), None)
        if best is not None:
            run.summary["best/job"] = best[0]
            run.summary["best/objective"] = float(best[rows[0].index("objective")])  # full precision in the CSV
    finally:
        run.finish()


# ---------------------------------------------------------------------------------------------- callback


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``): records the sweep and summarizes each job.

    Hydra turns an exception in a callback into a warning, so a summary never fails a finished job.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        # Optuna opens its sqlite study before any job has created the sweep directory.
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = str(config.hydra.sweeper.get("storage") or "")
        if storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(sweep_dir / SWEEP_FILE, json.dumps({"swept": swept_keys(config)}, indent=2) + "\n")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        _export_submitit_ranks()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN and os.environ.get("RANK", "0") == "0":
            write_summary(job_sweep_dir())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        jobs = write_summary(sweep_dir)
        best = best_job(jobs)
        log.info(
            "sweep summary: %s (%d jobs%s)",
            sweep_dir / "summary.md",
            len(jobs),
            f", best {best.job} objective {best.objective:.6g}" if best else "",
        )
        log_wandb_table(sweep_dir, OmegaConf.to_container(config.logger, resolve=True))


def _export_submitit_ranks() -> None:
    """Several tasks of one submitit job (``tasks_per_node`` > 1) form one torch.distributed group.

    Every task runs the same Hydra job, so all of them use the job's one run directory; rank 0 writes.
    """
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        # submitit's job environment is the authority inside the job: replace whatever the shell had.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


# ---------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ltxtune.sweeps", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (holds one directory per job)")
    parser.add_argument("--wandb", action="store_true", help="also log the summary table to the sweep's wandb group")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    if not (args.sweep_dir / "multirun.yaml").is_file():  # Hydra writes it in every sweep directory
        below = [p.parent for p in sorted(args.sweep_dir.rglob("multirun.yaml"))]
        where = ("; sweeps below it: " + ", ".join(str(p) for p in below)) if below else "; no sweeps below it either"
        parser.error(f"{args.sweep_dir} holds no sweep jobs (it has no multirun.yaml){where}")
    jobs = write_summary(args.sweep_dir)
    if not jobs:
        parser.error(f"no job directories (with .hydra/overrides.yaml) under {args.sweep_dir}")
    print((args.sweep_dir / "summary.md").read_text(), end="")
    if args.wandb:
        config = OmegaConf.load(args.sweep_dir / "multirun.yaml")
        log_wandb_table(args.sweep_dir, OmegaConf.to_container(config.logger, resolve=True))


if __name__ == "__main__":
    main()
