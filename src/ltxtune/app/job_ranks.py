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

PROCESSES_ENV = "LTXTUNE_JOB_PROCESSES"  # set by GpuSlots: the processes each job of the sweep runs
JOB_FILE = "job.json"

log = logging.getLogger(__name__)


def job_processes() -> int:
    """How many processes this sweep job runs (1 unless ``GpuSlots`` gave it several GPUs)."""
    return int(os.environ.get(PROCESSES_ENV, "1"))


def run_ranks(cfg: DictConfig, run_dir: Path, choices: dict[str, Any], processes: int) -> float:
    """Train the job with ``processes`` ranks on this job's GPUs; its objective (``inf`` unless completed)."""
    from ltxtune.sweeps.jobs import IDENTITY_ENV, job_identity
    from ltxtune.training.result import RunResult

    config = OmegaConf.to_container(cfg, resolve=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    job_file = run_dir / JOB_FILE
    job_file.write_text(json.dumps({"config": config, "choices": choices, "run_dir": str(run_dir)}) + "\n")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {k: v for k, v in os.environ.items() if k != PROCESSES_ENV}
    if (identity := job_identity()) is not None:  # the ranks have no Hydra to say which sweep job they are
        env[IDENTITY_ENV] = json.dumps(identity)
    ranks = subprocess.run([*launch, "-m", "ltxtune.app.job_ranks", str(job_file)], env=env, check=False)
    result = RunResult.read(trained_in(cfg, run_dir))
    if ranks.returncode != 0:
        why = result.error if result is not None and result.error else "see the ranks' output above"
        log.error("job failed: its %d ranks exited with code %d: %s", processes, ranks.returncode, why)
    return result.objective if result is not None and ranks.returncode == 0 else math.inf


def trained_in(cfg: DictConfig, run_dir: Path) -> Path:
    """Where the ranks trained: the job's directory, or the run a ``checkpoint.resume`` path continues."""
    from ltxtune.training.checkpoint import resolve_resume, run_dir_of

    try:
        resume = resolve_resume(cfg.checkpoint.get("resume"), run_dir, checksums=False)
    except Exception:  # the ranks met the same problem and said so
        return run_dir
    return run_dir_of(resume) if resume is not None else run_dir


def main(job_file: Path) -> None:
    """One rank of a sweep job: the saved config, trained in the job's run directory."""
    from ltxtune.app.train import user_error
    from ltxtune.ranks import is_main_rank
    from ltxtune.training.run import train_job

    # The ranks have no Hydra to set up logging: rank 0 says what the job does, as a one-process job would.
    logging.basicConfig(level=logging.INFO if is_main_rank() else logging.WARNING, format="[%(name)s] %(message)s")
    job = json.loads(job_file.read_text())
    try:
        train_job(OmegaConf.create(job["config"]), Path(job["run_dir"]), job["choices"], rerun_incomplete=True)
    except Exception as exc:
        if (line := user_error(exc)) is None:
            raise
        sys.exit(f"error: {line}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
