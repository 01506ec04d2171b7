"""The Optuna study of a search (``hparams_search=...``): its trials, a parameter importance, and two plots.

The sweeper of ``conf/hydra/sweeper/ltxtune_optuna.yaml`` keeps its study in ``<sweep dir>/optuna.db``. The
summary only reads it, opened read-only: it runs inside the sweep's callback while the sweeper writes the
study, and a study it cannot read costs a one-line note, never a job.

Optuna's own importance evaluators (fANOVA, mean decrease in impurity) need scikit-learn; ``importances``
is a small stand-in with no dependency: the share of the objective's variance that each parameter explains
on its own (see its docstring).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ltxtune.sweeps.plots import OBJECTIVE, Plots, legend_outside, pyplot, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger("ltxtune")

STUDY_FILE = "optuna.db"  # `storage: sqlite:///${hydra.sweep.dir}/optuna.db` in ltxtune_optuna.yaml
HISTORY_FILE = "optuna_history.png"
IMPORTANCE_FILE = "optuna_importance.png"
# The history's title for trials without a finite objective. A job that failed and returned inf is a
# complete trial to Optuna: failed, to the reader.
STATE_WORDS = {"complete": "failed", "fail": "failed"}
MAX_GROUPS = 5  # a numeric parameter's trials fall into at most this many groups (by rank) for `importances`


@dataclass(frozen=True)
class Trial:
    """One trial of a study. ``value`` is ``None`` unless it completed with a finite objective."""

    number: int
    state: str  # Optuna's, lower case: complete, fail, running, pruned, waiting
    value: float | None
    params: dict[str, Any]


# ---------------------------------------------------------------------------------------------- reading


def plot_study(sweep_dir: Path) -> Plots:
    """The study's history and importance plots when ``sweep_dir`` holds a study; a note if it cannot be read."""
    db = sweep_dir / STUDY_FILE
    if not db.is_file():
        return Plots(written=[], notes=[])
    try:
        trials = read_trials(db, configured_study_name(sweep_dir))
    except Exception as error:  # a corrupt, locked or foreign file: the rest of the summary still stands
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        note = f"Optuna plots skipped: cannot read the study in {STUDY_FILE} ({type(error).__name__}: {reason})."
        log.warning(note)
        return Plots(written=[], notes=[note])
    return _write_study_plots(sweep_dir, trials)


def read_trials(db: Path, study_name: str | None) -> list[Trial]:
    """The trials of ``study_name`` in the sqlite file ``db`` (``None``: the file's only study), read-only."""
    import optuna

    # Read-only, so that reading can never change the study the sweeper is writing.
    storage = optuna.storages.RDBStorage(f"sqlite:///file:{db.absolute()}?mode=ro&uri=true")
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [
        Trial(number=t.number, state=t.state.name.lower(), value=_finite(t.value), params=dict(t.params))
        for t in study.trials
    ]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def configured_study_name(sweep_dir: Path) -> str | None:
    """``hydra.sweeper.study_name`` from the sweep's ``multirun.yaml``, or ``None`` (then the file's only study)."""
    path = sweep_dir / "multirun.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    name = ((config or {}).get("hydra") or {}).get("sweeper", {}).get("study_name")
    return name if isinstance(name, str) else None


def _write_study_plots(sweep_dir: Path, trials: list[Trial]) -> Plots:
    done = [t for t in trials if t.value is not None]
    if not done:
        return Plots(written=[], notes=["Optuna plots: no trial of the study has finished yet."])
    shows = "every trial's objective in the order Optuna ran them, and the best so far"
    written = [save(history_figure(trials), sweep_dir, HISTORY_FILE, shows)]
    scores = importances([t.params for t in done], [t.value for t in done])
    if not any(math.isfinite(s) for s in scores.values()):
        return Plots(written=written, notes=["Optuna importance plot: too few finished trials to tell yet."])
    shows = "the share of the objective's variance each searched parameter explains on its own"
    written.append(save(importance_figure(scores, len(done)), sweep_dir, IMPORTANCE_FILE, shows))
    return Plots(written=written, notes=[])


# ---------------------------------------------------------------------------------------------- importance


def importances(params: list[Mapping[str, Any]], values: list[float]) -> dict[str, float]:
    """How much of the objective's variance each parameter explains on its own, in [0, 1].

    The trials are grouped by the parameter: by value for a choice, by rank into at most ``MAX_GROUPS``
    groups of about four trials for a number (so the scale of a log-searched learning rate does not matter).
    The score is the between-group share of the variance, less what ``k`` groups explain of pure noise
    (epsilon squared: ``(SS_between - (k - 1) * SS_within / (n - k)) / SS_total``, floored at 0), so a choice
    of four values does not look more important than one of two by chance. NaN when the parameter's
    ``n`` trials cannot tell (as many groups as trials). A trial without the parameter (a key added to a
    continued study) does not count for it. Interactions between parameters are not seen.
    """
    names = list(dict.fromkeys(name for p in params for name in p))
    scores = {}
    for name in names:
        pairs = [(p[name], v) for p, v in zip(params, values, strict=True) if name in p]
        scores[name] = explained_variance(_groups([x for x, _ in pairs]), [v for _, v in pairs])
    return scores


def _groups(xs: list[Any]) -> list[Any]:
    """A group label per trial: the value itself, or for many distinct numbers their rank bin."""
    groups = max(2, min(MAX_GROUPS, len(xs) // 4))
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
    if not numeric or len(set(xs)) <= groups:
        return list(xs)
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    bins = [0] * len(xs)
    for rank, i in enumerate(order):
        bins[i] = rank * groups // len(xs)
    return bins


def explained_variance(groups: list[Any], values: list[float]) -> float:
    """Epsilon squared of ``values`` grouped by ``groups`` (see ``importances``); NaN when it cannot tell."""
    n, k = len(values), len(set(groups))
    if n <= k:
        return math.nan  # every trial in a group of its own: nothing to compare within groups
    if k == 1:
        return 0.0  # a parameter that never varied explains nothing
    mean = sum(values) / n
    total = sum((v - mean) ** 2 for v in values)
    if total == 0:
        return 0.0
    members: dict[Any, list[float]] = {}
    for g, v in zip(groups, values, strict=True):
        members.setdefault(g, []).append(v)
    between = sum(len(m) * (sum(m) / len(m) - mean) ** 2 for m in members.values())
    within = total - between
    return min(1.0, max(0.0, (between - (k - 1) * within / (n - k)) / total))


# ---------------------------------------------------------------------------------------------- figures


def history_figure(trials: list[Trial]) -> Figure:
    """Each finished trial's objective by trial number, the best so far as a step line."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = pyplot().subplots(figsize=(6.4, 4.2))
    done = [t for t in sorted(trials, key=lambda t: t.number) if t.value is not None]
    best, running = math.inf, []
    for t in done:
        best = min(best, t.value)
        running.append(best)
    ax.scatter([t.number for t in done], [t.value for t in done], color="tab:blue", label="trial")
    ax.step([t.number for t in done], running, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(OBJECTIVE)
    states = [STATE_WORDS.get(t.state, t.state) if t.value is None else "finished" for t in trials]
    unfinished = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states) - {"finished"}))
    ax.set_title(f"{len(done)} of {len(trials)} trials finished" + (f" ({unfinished})" if unfinished else ""))
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def importance_figure(scores: Mapping[str, float], trials: int) -> Figure:
    """A bar per parameter, most important on top, each labelled with its score."""
    ranked = sorted(scores.items(), key=lambda item: (-_or_zero(item[1]), item[0]))[::-1]
    fig, ax = pyplot().subplots(figsize=(6.4, max(2.5, 0.5 * len(ranked) + 1.5)))
    heights = [_or_zero(s) for _, s in ranked]
    ax.barh(range(len(ranked)), heights, color="tab:blue")
    for y, (_, score) in enumerate(ranked):
        ax.text(_or_zero(score) + 0.01, y, f"{score:.2f}" if math.isfinite(score) else "n/a", va="center")
    ax.set_yticks(range(len(ranked)), [name for name, _ in ranked])
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("share of the objective's variance explained (adjusted for chance)")
    ax.set_title(f"parameter importance, {trials} finished trials")
    ax.grid(alpha=0.3, axis="x")
    return fig


def _or_zero(score: float) -> float:
    return score if math.isfinite(score) else 0.0
