"""``summary.csv``, ``summary.md`` and the plots of a sweep directory, rebuilt from its job directories.

The plots themselves are drawn in ``plots.py`` (and ``study.py`` for an Optuna search)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import secrets
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ltxtune.files import exclusive_lock
from ltxtune.sweeps.jobs import JobRecord, group_name, parse_overrides, read_swept
from ltxtune.sweeps.plots import Plots, plot_sweep
from ltxtune.sweeps.study import plot_study
from ltxtune.training.result import RunResult

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
    result = RunResult.read(job_dir)
    if result is None:
        return JobRecord(job=name, overrides=overrides, status="incomplete", objective=math.inf)
    records = _read_metrics(job_dir / "metrics.jsonl")
    speeds = [r["train/samples_per_s"] for r in records if r.get("train/samples_per_s") is not None]
    steps, wall = int(result.steps), result.wall_s
    return JobRecord(
        job=name,
        overrides=overrides,
        status=result.status,
        objective=float(result.objective),
        val_loss=result.val_loss,
        train_loss=result.train_loss,
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
        write_atomic(sweep_dir / "summary.csv", _csv_text([*header, "overrides"], csv_rows))
        jobs_plots, study = plot_sweep(sweep_dir, jobs, keys, best), plot_study(sweep_dir)
        plots = Plots(written=jobs_plots.written + study.written, notes=jobs_plots.notes + study.notes)
        write_atomic(sweep_dir / "summary.md", _markdown(sweep_dir, header, rows, best, keys) + _plot_list(plots))
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


def _plot_list(plots: Plots) -> str:
    """The pictures beside ``summary.md``, each linked with what it shows, and why any were skipped."""
    lines = ["", "## Plots", ""]
    lines += [f"- [`{p.file}`]({p.file}): {p.shows}." for p in plots.written]
    lines += [f"- {note}" for note in plots.notes]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
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
