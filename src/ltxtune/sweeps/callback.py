"""The Hydra callback that records a sweep when it starts and summarizes it after every job."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ltxtune.ranks import is_main_rank
from ltxtune.sweeps.jobs import SWEEP_FILE, job_sweep_dir, swept_keys
from ltxtune.sweeps.summary import best_job, log_wandb_table, write_atomic, write_summary

log = logging.getLogger("ltxtune")


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
        write_atomic(sweep_dir / SWEEP_FILE, json.dumps({"swept": swept_keys(config)}, indent=2) + "\n")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        _export_submitit_ranks()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN and is_main_rank():
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
