"""A sweep job on several GPUs of one machine (``hydra/launcher=gpus hydra.callbacks.gpus.per_job=k``).

The Hydra job runs in a joblib worker, one process. It saves its resolved config beside its run and starts
``k`` ranks itself (``torchrun --standalone``, one process per GPU of its slot), each of which loads that file
and trains the job as ``torchrun train.py`` would: one run directory, rank 0 writes. Hydra is never run under
``torchrun`` (every rank would then run the whole sweep). ``python -m ltxtune.app.job_ranks <job.json>`` is
the ranks' entry point.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ltxtune.app.failures import user_error
from ltxtune.ranks import is_main_rank
from ltxtune.sweeps.devices import PROCESSES_ENV
from ltxtune.training.result import RunResult
from ltxtune.training.run import train
from ltxtune.training.rundir import RunDir

JOB_FILE = "job.json"

log = logging.getLogger(__name__)


def run_ranks(
    cfg: DictConfig, run_dir: Path, choices: dict[str, Any], sweep_job: tuple[str, str] | None, processes: int
) -> float:
    """Train the job with ``processes`` ranks on this job's GPUs; its objective (``inf`` unless completed)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_file = run_dir / JOB_FILE
    job = {"config": config, "choices": choices, "run_dir": str(run_dir), "sweep_job": sweep_job}
    job_file.write_text(json.dumps(job) + "\n")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {k: v for k, v in os.environ.items() if k != PROCESSES_ENV}
    ranks = subprocess.run([*launch, "-m", "ltxtune.app.job_ranks", str(job_file)], env=env, check=False)
    try:  # where the ranks trained: the job's directory, or the run a checkpoint.resume path continues
        trained_in = RunDir.locate(run_dir, cfg.checkpoint.get("resume"), main=False).path
    except Exception:  # the ranks met the same problem and said so
        trained_in = run_dir
    result = RunResult.read(trained_in)
    if ranks.returncode != 0:
        why = result.error if result is not None and result.error else "see the ranks' output above"
        log.error("job failed: its %d ranks exited with code %d: %s", processes, ranks.returncode, why)
    return result.objective if result is not None and ranks.returncode == 0 else math.inf


def main(job_file: Path) -> None:
    """One rank of a sweep job: the saved config, trained in the job's run directory."""
    # The ranks have no Hydra to set up logging: rank 0 says what the job does, as a one-process job would.
    logging.basicConfig(level=logging.INFO if is_main_rank() else logging.WARNING, format="[%(name)s] %(message)s")
    job = json.loads(job_file.read_text())
    sweep_job = tuple(job["sweep_job"]) if job.get("sweep_job") else None
    try:
        train(
            OmegaConf.create(job["config"]),
            Path(job["run_dir"]),
            job["choices"],
            sweep_job=sweep_job,
            rerun_incomplete=True,
        )
    except Exception as exc:
        if (line := user_error(exc)) is None:
            raise
        sys.exit(f"error: {line}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
