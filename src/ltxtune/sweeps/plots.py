"""The pictures of a sweep directory: the objective against each swept key, a heatmap for a two-key grid, the
validation curves, and (for an Optuna search) the study's history and parameter importance.

Every function that draws returns a matplotlib ``Figure`` and saves nothing, so tests can look at its axes;
``plot_sweep`` saves them and returns what it wrote, for ``summary.md`` to list.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ltxtune.sweeps.jobs import JobRecord

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

OBJECTIVE = "objective (val/loss)"
HEATMAP_FILE = "objective_heatmap.png"
VAL_LOSS_FILE = "val_loss.png"
LOG_SPAN = 10.0  # positive values spanning this ratio or more get a log axis (learning rates span decades)
LINE_STYLES = ("-", "--", ":", "-.")
MAX_VALUE_TICKS = 10  # up to this many swept values are each a tick, labelled as on the command line


@dataclass(frozen=True)
class Plot:
    """A picture written into the sweep directory, and what it shows (one line of ``summary.md``)."""

    file: str
    shows: str


@dataclass(frozen=True)
class Plots:
    """What ``plot_sweep`` wrote, and one line for each picture it skipped and why."""

    written: list[Plot]
    notes: list[str]


# ---------------------------------------------------------------------------------------------- all plots


def plot_sweep(sweep_dir: Path, jobs: list[JobRecord], keys: list[str], best: JobRecord | None) -> Plots:
    """Write the pictures of the jobs in ``sweep_dir``: one per swept key, the heatmap of a two-key grid and the
    curves (the Optuna study's own plots are ``study.plot_study``'s)."""
    written = []
    for key in keys:
        fig = objective_figure(jobs, key, best)
        written.append(save(fig, sweep_dir, objective_file(key), _shows_key(key, fig.axes[0].get_xscale())))
    if len(keys) == 2:
        grid = objective_grid(jobs, col_key=keys[0], row_key=keys[1])
        shows = f"the objective of every {keys[0]} x {keys[1]} cell; hatched cells have none (failed, not finished)"
        written.append(save(heatmap_figure(grid, best), sweep_dir, HEATMAP_FILE, shows))
    shows = "the validation loss against the step, one line per job"
    written.append(save(val_loss_figure(jobs, keys), sweep_dir, VAL_LOSS_FILE, shows))
    return Plots(written=written, notes=[])


def objective_file(key: str) -> str:
    safe = re.sub(r"[^-\w.]", "_", key)
    return f"objective_vs_{safe}.png"


def _shows_key(key: str, scale: str) -> str:
    return f"the objective against {key}{' (log axis)' if scale == 'log' else ''}; the best job starred"


def save(fig: Figure, sweep_dir: Path, name: str, shows: str) -> Plot:
    """Write ``fig`` as ``sweep_dir/name`` (whole, or not at all: a reader never sees half a PNG) and close it."""
    import matplotlib.pyplot as plt

    path = sweep_dir / name
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")  # "tight" keeps legends outside the axes
    plt.close(fig)
    tmp.replace(path)
    return Plot(file=name, shows=shows)


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` without a display, imported only when a sweep draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def legend_outside(ax: Axes) -> None:
    """The legend to the right of the axes, where it covers no data (``save`` widens the picture for it)."""
    labels = ax.get_legend_handles_labels()[1]
    ncol = 1 + len(labels) // 20
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small", ncol=ncol)


# ---------------------------------------------------------------------------------------------- values


def numbers(values: list[str]) -> list[float] | None:
    """``values`` as floats, or ``None`` when any is not a number (a group option, a class name)."""
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def x_scale(values: list[float]) -> str:
    """``"log"`` when the values are all positive and span ``LOG_SPAN`` (10x) or more, else ``"linear"``."""
    if not values or min(values) <= 0:
        return "linear"
    return "log" if max(values) / min(values) >= LOG_SPAN else "linear"


def sorted_values(values: list[str]) -> list[str]:
    """The distinct values, in numeric order when all are numbers, else in the order the jobs ran them."""
    distinct = list(dict.fromkeys(values))
    return sorted(distinct, key=float) if numbers(distinct) is not None else distinct


def finished(job: JobRecord) -> bool:
    """A job with an objective to draw: completed, with a finite validation loss."""
    return job.status == "completed" and math.isfinite(job.objective)


# ---------------------------------------------------------------------------------------------- objective


def objective_figure(jobs: list[JobRecord], key: str, best: JobRecord | None) -> Figure:
    """The objective of every finished job against its value of ``key``; the best job starred.

    Numbers go on a numeric axis (log when they span 10x or more), other values one tick each.
    """
    fig, ax = pyplot().subplots(figsize=(6.4, 4.2))
    points = [(j.overrides[key], j.objective) for j in jobs if finished(j) and key in j.overrides]
    values = sorted_values([j.overrides[key] for j in jobs if key in j.overrides])
    as_numbers = numbers(values)
    if as_numbers is not None:
        position = dict(zip(values, as_numbers, strict=True))
        ax.set_xscale(x_scale(as_numbers))
    else:
        position = {v: float(i) for i, v in enumerate(values)}
        ax.set_xlim(-0.5, len(values) - 0.5)  # half a slot either side, not points on the frame
    if as_numbers is None or len(values) <= MAX_VALUE_TICKS:
        _value_ticks(ax, [position[v] for v in values], values)
    ax.scatter([position[x] for x, _ in points], [y for _, y in points], color="tab:blue", label="job")
    if best is not None and key in best.overrides:
        x = position[best.overrides[key]]
        ax.scatter([x], [best.objective], marker="*", s=220, color="tab:red", label=f"best (job {best.job})")
    ax.set_xlabel(key)
    ax.set_ylabel(OBJECTIVE)
    ax.set_title(f"{len(points)} of {len(jobs)} jobs with a finite objective")
    ax.grid(alpha=0.3)
    if points:
        legend_outside(ax)
    return fig


def _value_ticks(ax: Axes, positions: list[float], labels: list[str]) -> None:
    """One tick per swept value, written as on the command line (``5e-4``, not ``10^-3.3``)."""
    long = max(map(len, labels), default=0) > 6
    ax.set_xticks(positions, labels, rotation=30 if long else 0, ha="right" if long else "center")
    ax.minorticks_off()


# ---------------------------------------------------------------------------------------------- heatmap


@dataclass(frozen=True)
class Grid:
    """A two-key grid of jobs: ``cells[i][j]`` ran ``row_key=rows[i]`` and ``col_key=cols[j]`` (``None``: no job)."""

    col_key: str
    row_key: str
    cols: list[str]
    rows: list[str]
    cells: list[list[JobRecord | None]]

    def values(self) -> list[list[float]]:
        """The objective of each cell, NaN where it has none (failed, not finished, not run)."""
        return [[c.objective if c is not None and finished(c) else math.nan for c in row] for row in self.cells]

    def labels(self) -> list[list[str]]:
        """What each cell says: its objective, or why it has none."""
        return [[_cell_label(c) for c in row] for row in self.cells]


def objective_grid(jobs: list[JobRecord], col_key: str, row_key: str) -> Grid:
    """The jobs of a two-key sweep as a grid, each axis in numeric order where its values are numbers.

    When several jobs share a cell (another key varies too, or a job ran twice), the cell keeps the best.
    """
    placed = [j for j in jobs if col_key in j.overrides and row_key in j.overrides]
    cols = sorted_values([j.overrides[col_key] for j in placed])
    rows = sorted_values([j.overrides[row_key] for j in placed])
    cells: list[list[JobRecord | None]] = [[None] * len(cols) for _ in rows]
    for job in placed:
        i, j = rows.index(job.overrides[row_key]), cols.index(job.overrides[col_key])
        cells[i][j] = _better(cells[i][j], job)
    return Grid(col_key=col_key, row_key=row_key, cols=cols, rows=rows, cells=cells)


def _better(kept: JobRecord | None, job: JobRecord) -> JobRecord:
    if kept is None or not finished(kept):
        return job if finished(job) or kept is None else kept
    return job if finished(job) and job.objective < kept.objective else kept


def _cell_label(job: JobRecord | None) -> str:
    if job is None:
        return "not run"
    return f"{job.objective:.4g}" if finished(job) else job.status


def heatmap_figure(grid: Grid, best: JobRecord | None) -> Figure:
    """The grid coloured by objective (lower is better), each cell annotated; hatched cells have no objective."""
    import numpy as np

    plt = pyplot()
    values = np.ma.masked_invalid(np.array(grid.values(), dtype=float).reshape(len(grid.rows), len(grid.cols)))
    width = max(5.0, 1.1 * len(grid.cols) + 2.5)
    fig, ax = plt.subplots(figsize=(width, max(3.5, 0.8 * len(grid.rows) + 1.8)))
    ax.set_facecolor("0.92")  # the colour of cells without an objective, under their hatching
    image = ax.imshow(values, cmap="viridis_r", origin="lower", aspect="auto")
    for i, row in enumerate(grid.cells):
        for j, job in enumerate(row):
            _annotate_cell(ax, image, i, j, job, job is not None and job is best)
    ax.set_xticks(range(len(grid.cols)), grid.cols)
    ax.set_yticks(range(len(grid.rows)), grid.rows)
    ax.set_xlabel(grid.col_key)
    ax.set_ylabel(grid.row_key)
    ax.set_title(f"objective, {values.count()} of {values.size} cells finished (best outlined)")
    fig.colorbar(image, ax=ax, label=OBJECTIVE)
    return fig


def _annotate_cell(ax: Axes, image: AxesImage, i: int, j: int, job: JobRecord | None, is_best: bool) -> None:
    from matplotlib.patches import Rectangle

    label = _cell_label(job)
    if job is None or not finished(job):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="0.6", linewidth=0))
        ax.text(j, i, label, ha="center", va="center", fontsize="small", color="0.25")
        return
    red, green, blue, _ = image.cmap(image.norm(job.objective))
    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark cells, black on light ones
    ax.text(j, i, label, ha="center", va="center", fontsize="small", color="white" if dark else "black")
    if is_best:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="tab:red", linewidth=2.5))


# ---------------------------------------------------------------------------------------------- curves


def val_loss_figure(jobs: list[JobRecord], keys: list[str]) -> Figure:
    """The validation loss of every job against the step, each line named by the job's swept values."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4.2))
    curves = [j for j in jobs if j.val_curve]
    for i, job in enumerate(curves):
        steps, losses = zip(*job.val_curve, strict=True)
        label = ", ".join(f"{k}={job.overrides.get(k, '')}" for k in keys) or f"job {job.job}"
        # The colour cycle has 10 colours: the 11th line on is told apart by its dashes.
        style = LINE_STYLES[i // 10 % len(LINE_STYLES)]
        ax.plot(steps, losses, marker="o", markersize=3, linestyle=style, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("val/loss")
    ax.set_title("validation loss")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        legend_outside(ax)
    return fig
