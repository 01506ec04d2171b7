"""Hydra instantiates sweepers only from classes defined in the ``hydra_plugins`` package: ltxtune's Optuna
search (``ltxtune.sweeps.search``) is named here."""

from ltxtune.sweeps import search


class OptunaSearch(search.OptunaSearch):
    """``hydra/sweeper=ltxtune_optuna``: see ``ltxtune.sweeps.search.OptunaSearch``."""
