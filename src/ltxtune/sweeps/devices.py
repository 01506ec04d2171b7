"""Parallel sweep jobs on one machine, each on its own GPUs (``hydra/launcher=gpus``).

joblib runs a sweep's jobs in a pool of worker processes, and each would train on ``cuda:0``. ``GpuSlots`` cuts
the machine's GPUs into slots of ``per_job`` devices. Each worker process takes a free slot when it starts its
first job and keeps it for the rest of its life: CUDA reads ``CUDA_VISIBLE_DEVICES`` once, when a process first
touches it, so a worker cannot change GPUs between jobs. A slot is an ``flock`` on a file in the sweep
directory: one live process holds it, and it is freed when that process ends, however it ends. With no more
parallel jobs than slots (checked when the sweep starts), no two jobs that run at the same time share a GPU.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig

log = logging.getLogger("ltxtune")


PROCESSES_ENV = "LTXTUNE_JOB_PROCESSES"  # set for a sweep job given several GPUs: the ranks it starts itself


def job_processes() -> int:
    """How many processes this sweep job runs (1 unless ``GpuSlots`` gave it several GPUs)."""
    return int(os.environ.get(PROCESSES_ENV, "1"))


SLOTS_FILE = "gpu_slots.json"  # in the sweep directory: the slots, written when the sweep starts
LOCKS_DIR = ".gpu_slots"
KEY = "hydra.callbacks.gpus"

# The slot this worker process holds: the open lock file (the flock lives as long as it) and its devices.
_held: tuple[IO[str], list[str]] | None = None


def visible_gpus() -> list[str]:
    """The GPUs this machine offers: ``CUDA_VISIBLE_DEVICES`` when it is set, else every one torch counts."""
    if (listed := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def cut_slots(pool: Sequence[str], per_job: int) -> list[list[str]]:
    """``pool`` in slots of ``per_job`` devices, in order; devices left over are not used."""
    return [list(pool[i : i + per_job]) for i in range(0, len(pool) - per_job + 1, per_job)]


def claim_slot(sweep_dir: Path, poll_s: float = 0.5) -> list[str]:
    """The devices of the slot this process holds, taking a free one on the first call.

    All slots taken means a worker that has just ended has not let go yet: wait for it.
    """
    global _held
    if _held is not None:
        return _held[1]
    slots = json.loads((sweep_dir / SLOTS_FILE).read_text())["slots"]
    (sweep_dir / LOCKS_DIR).mkdir(exist_ok=True)
    waited = False
    while True:
        for index, devices in enumerate(slots):
            handle = (sweep_dir / LOCKS_DIR / f"slot{index}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held = (handle, devices)
            return devices
        if not waited:
            log.info("every GPU slot of %s is taken: waiting for one", sweep_dir)
            waited = True
        time.sleep(poll_s)


class GpuSlots(Callback):
    """Hydra callback (``conf/hydra/launcher/gpus.yaml``): each parallel job of a sweep gets its own GPUs.

    Args:
        devices: the GPUs to share out: ``auto`` (``CUDA_VISIBLE_DEVICES``, else every GPU torch sees) or a
            list of device ids (``[0, 1, 2, 3]``; any strings ``CUDA_VISIBLE_DEVICES`` accepts).
        per_job: GPUs per job (1: one job per GPU); a job with several runs one process per GPU.
    """

    def __init__(self, devices: str | Sequence[Any] = "auto", per_job: int = 1) -> None:
        self.devices, self.per_job = devices, per_job

    def slots(self) -> list[list[str]]:
        """The slots of this sweep; a bad setting ends the sweep in one line."""
        if not isinstance(self.per_job, int) or self.per_job < 1:
            sys.exit(f"error: {KEY}.per_job={self.per_job}: the GPUs of each job, an integer >= 1")
        if self.devices == "auto":
            pool = visible_gpus()
        elif isinstance(self.devices, ListConfig | list | tuple):
            pool = [str(d) for d in self.devices]
        else:
            sys.exit(f"error: {KEY}.devices={self.devices}: auto, or a list of GPU ids such as [0,1,2,3]")
        if not (slots := cut_slots(pool, self.per_job)):
            sys.exit(
                f"error: {KEY}.devices={self.devices}: no GPU to give the jobs (found {pool or 'none'}): list "
                f"them ({KEY}.devices=[0,1]), or run the jobs side by side on the CPU with hydra/launcher=joblib"
            )
        return slots

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        slots = self.slots()
        n_jobs = config.hydra.launcher.get("n_jobs")
        if not isinstance(n_jobs, int) or not 1 <= n_jobs <= len(slots):
            gpus = " ".join(",".join(s) for s in slots)
            sys.exit(
                f"error: hydra.launcher.n_jobs={n_jobs}: the jobs that run at once, each on its own GPU, "
                f"so 1 ... {len(slots)} (GPUs {gpus}): set hydra.launcher.n_jobs={len(slots)}"
            )
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SLOTS_FILE).write_text(json.dumps({"slots": slots}) + "\n")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Before the job imports torch: its slot's GPUs become the only ones it sees (from ``cuda:0``)."""
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        devices = claim_slot(Path(config.hydra.sweep.dir).absolute())
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        os.environ[PROCESSES_ENV] = str(len(devices))  # one rank per GPU (ltxtune.app.job_ranks)
        log.info("job %s: CUDA_VISIBLE_DEVICES=%s", config.hydra.job.num, os.environ["CUDA_VISIBLE_DEVICES"])
