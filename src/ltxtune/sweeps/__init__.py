"""Sweeps people can trust: a summary after every job, resume without re-running, and each job's wandb identity.

A sweep directory holds one directory per job (Hydra's ``hydra.sweep.dir`` / ``hydra.sweep.subdir``). After
every job, ``SweepSummary`` (a Hydra callback in ``conf/train.yaml``) rebuilds from the job directories:

- ``summary.csv`` and ``summary.md``: one row per job (swept values, status, objective, losses, speed, wall
  time), the best row marked;
- ``objective_vs_<key>.png`` for each swept key, ``objective_heatmap.png`` for a two-key grid and
  ``val_loss.png`` (validation loss curves of every job), drawn in ``plots.py``;
- for an Optuna search, ``optuna_history.png`` and ``optuna_importance.png`` from its study (``study.py``).

``python -m ltxtune.sweeps <sweep dir> [--wandb]`` rebuilds the same files (and logs the wandb table).
The summary is written in ``on_job_end`` because Hydra skips ``on_multirun_end`` when any job fails.
Importing this module costs only Hydra and the standard library: matplotlib and wandb load when needed.
"""
