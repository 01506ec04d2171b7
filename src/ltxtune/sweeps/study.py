"""The Optuna study of a search (``hparams_search=...``) in the summary: Optuna's own plots of it.

The study lives where ``hydra.sweeper.storage`` of the sweep's ``multirun.yaml`` says (by default
``<sweep dir>/optuna.db``). The summary only reads it (a sqlite file is opened read-only): it runs while the
workers write the study, and a study it cannot read costs a one-line note, never a job.

The plots are Optuna's (``optuna.visualization.matplotlib``): the history, the parameter importance
(PED-ANOVA, Optuna's default evaluator), each trial's reported ``val/loss`` by step (pruned trials stop
early) and the timeline of the trials on the workers, states coloured (complete, pruned, fail, running).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ltxtune.sweeps.plots import Plots, pyplot, save

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("ltxtune")

STUDY_FILE = "optuna.db"  # the default storage: `sqlite:///${hydra.sweep.dir}/optuna.db` in ltxtune_optuna.yaml
HISTORY_FILE = "optuna_history.png"
IMPORTANCE_FILE = "optuna_importance.png"
INTERMEDIATE_FILE = "optuna_val_loss.png"
TIMELINE_FILE = "optuna_timeline.png"


# ---------------------------------------------------------------------------------------------- reading


def configured_search(sweep_dir: Path) -> tuple[str | None, str | None]:
    """``(study_name, storage)`` of ``hydra.sweeper`` in the sweep's ``multirun.yaml`` (``None`` where unset)."""
    path = sweep_dir / "multirun.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    sweeper = ((config or {}).get("hydra") or {}).get("sweeper") or {}
    name, storage = sweeper.get("study_name"), sweeper.get("storage")
    if isinstance(storage, str):  # Hydra saves the file unresolved; the default storage sits in the sweep dir
        storage = storage.replace("${hydra.sweep.dir}", str(sweep_dir.absolute()))
    return (name if isinstance(name, str) else None), (storage if isinstance(storage, str) else None)


def read_only_storage(sweep_dir: Path, storage: str | None) -> Any | None:
    """The study's storage opened for reading; ``None`` when the sweep has none."""
    import optuna

    from ltxtune.sweeps.trials import is_rdb

    if storage is None and (sweep_dir / STUDY_FILE).is_file():
        storage = f"sqlite:///{sweep_dir / STUDY_FILE}"
    if storage is None or "${" in storage:
        return None
    if storage.startswith("sqlite:///"):
        db = Path(storage.removeprefix("sqlite:///"))
        if not db.is_file():
            return None
        # Read-only, so that reading can never change the study the workers are writing.
        return optuna.storages.RDBStorage(f"sqlite:///file:{db.absolute()}?mode=ro&uri=true")
    if is_rdb(storage):
        return optuna.storages.RDBStorage(storage)
    if not Path(storage).is_file():
        return None
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(storage))


def load_study(sweep_dir: Path) -> optuna.Study | None:
    """The sweep's study, read-only; ``None`` when it has none."""
    import optuna

    name, storage = configured_search(sweep_dir)
    opened = read_only_storage(sweep_dir, storage)
    return None if opened is None else optuna.load_study(study_name=name, storage=opened)


def plot_study(sweep_dir: Path) -> Plots:
    """Optuna's plots of the sweep's study, when it has one; a note if it cannot be read."""
    try:
        study = load_study(sweep_dir)
    except Exception as error:  # a corrupt, locked or foreign file: the rest of the summary still stands
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        note = f"Optuna plots skipped: cannot read the study in {STUDY_FILE} ({type(error).__name__}: {reason})."
        log.warning(note)
        return Plots(written=[], notes=[note])
    if study is None:
        return Plots(written=[], notes=[])
    return write_study_plots(sweep_dir, study)


def write_study_plots(sweep_dir: Path, study: optuna.Study) -> Plots:
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    trials = study.get_trials(deepcopy=False)
    if not trials:
        return Plots(written=[], notes=["Optuna plots: the study holds no trial yet."])
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    states = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    plots: list[tuple[str, Callable[[], Any], str]] = []
    notes = []
    if counts["complete"]:
        plots += [
            (
                HISTORY_FILE,
                lambda: ovm.plot_optimization_history(study),
                f"every completed trial's objective in the order they ran, and the best so far ({states})",
            ),
            (
                IMPORTANCE_FILE,
                lambda: ovm.plot_param_importances(study),
                "how much each searched parameter matters to the objective (Optuna's PED-ANOVA importance)",
            ),
        ]
    else:
        notes.append(f"Optuna history and importance: no trial of the study has completed yet ({states}).")
    plots += [
        (
            INTERMEDIATE_FILE,
            lambda: ovm.plot_intermediate_values(study),
            f"each trial's val/loss at every validation step; pruned trials end early ({states})",
        ),
        (
            TIMELINE_FILE,
            lambda: ovm.plot_timeline(study),
            "when each trial ran and how it ended (complete, pruned, fail): the workers never wait for each other",
        ),
    ]
    pyplot()  # without a display
    written = []
    for file, draw, shows in plots:
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore")
                ax = draw()
        except Exception as error:  # e.g. importance from a single completed trial
            notes.append(f"Optuna plot {file} skipped: {type(error).__name__}: {error}".rstrip())
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(7.5, 4.8)
        written.append(save(fig, sweep_dir, file, shows))
    return Plots(written=written, notes=notes)
