"""A search's study on Optuna's storage, as both sides use it: the searching process and the trial's job.

The storage setting is an RDB URL (``sqlite:///<sweep dir>/optuna.db`` for one machine; ``postgresql://...``,
``mysql://...`` for several) or a path, which is Optuna's journal file (``<dir>/optuna.journal``: one file on a
shared file system several machines append to). The job of a trial finds its trial through ``TRIAL_ENV`` (set
by the searcher for that job alone) and reports its ``val/loss`` at every validation; the pruner, built from the
same settings, says whether to stop.

Importing this module costs only the standard library: Optuna loads when a study is opened.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltxtune.errors import ConfigError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("ltxtune")

TRIAL_ENV = "LTXTUNE_TRIAL_ID"  # the Optuna trial id of the job, set by the searcher through hydra.job.env_set
KEY = "hydra.sweeper"

SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "gp": "GPSampler",
    "qmc": "QMCSampler",
    "nsga2": "NSGAIISampler",
}
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "patient": "PatientPruner",
    "none": "NopPruner",
}


def is_rdb(storage: str) -> bool:
    return "://" in storage


def open_storage(storage: str) -> optuna.storages.BaseStorage:
    """The study's storage: an RDB for a URL, Optuna's journal file for a path (its directory is made)."""
    import optuna

    if is_rdb(storage):
        # sqlite: several processes write the one file; wait for the lock rather than fail at once.
        engine = {"connect_args": {"timeout": 120}} if storage.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(storage, engine_kwargs=engine)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_sampler(name: str, args: Mapping[str, Any] | None, seed: int | None) -> optuna.samplers.BaseSampler:
    import optuna

    if name not in SAMPLERS:
        raise ConfigError(f"{KEY}.sampler", name, " | ".join(SAMPLERS))
    kwargs = dict(args or {})
    if seed is not None:
        kwargs.setdefault("seed", seed)
    return _build(optuna.samplers, SAMPLERS[name], kwargs, f"{KEY}.sampler_args")


def make_pruner(name: str, args: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    import optuna

    if name not in PRUNERS:
        raise ConfigError(f"{KEY}.pruner", name, " | ".join(PRUNERS))
    kwargs = dict(args or {})
    if name == "patient":  # waits `patience` validations more before asking the median pruner
        kwargs.setdefault("wrapped_pruner", optuna.pruners.MedianPruner())
        kwargs.setdefault("patience", 1)
    return _build(optuna.pruners, PRUNERS[name], kwargs, f"{KEY}.pruner_args")


def _build(module: Any, cls: str, kwargs: dict[str, Any], key: str) -> Any:
    try:
        return getattr(module, cls)(**kwargs)
    except (TypeError, ValueError) as error:
        kind = module.__name__.split(".")[-1]
        raise ConfigError(key, kwargs, f"arguments that optuna.{kind}.{cls} takes ({error})") from None


# ---------------------------------------------------------------------------------------------- the job's side


def trial_reporter(sweeper: Mapping[str, Any]) -> Callable[[int, float], bool] | None:
    """``on_validation`` for the job of a search's trial: report ``val/loss`` at ``step``, True when pruned.

    ``None`` outside a search's job. ``sweeper``: the search's settings (``hydra.sweeper`` of the job).
    """
    trial_id = os.environ.get(TRIAL_ENV)
    if not trial_id or not sweeper.get("storage"):
        return None
    import optuna

    storage = open_storage(str(sweeper["storage"]))
    pruner = make_pruner(str(sweeper.get("pruner") or "none"), sweeper.get("pruner_args"))
    study = optuna.load_study(study_name=str(sweeper["study_name"]), storage=storage, pruner=pruner)
    trial = optuna.trial.Trial(study, int(trial_id))

    def report(step: int, loss: float) -> bool:
        if not math.isfinite(loss):
            return False  # the trainer's own check ends a diverged run as failed
        try:
            trial.report(loss, step)
            return trial.should_prune()
        except Exception as error:  # a trial already ended by another process (marked stale): train on
            log.warning("trial %s: cannot report val/loss at step %d (%s)", trial.number, step, error)
            return False

    return report
