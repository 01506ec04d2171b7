"""How many threads torch's CPU math uses in each process of a run.

torch starts one intra-op thread per core it sees. Its OpenMP threads spin at every parallel region until all
of them arrive, so one thread that the system parks behind another process stalls the others: on a 2-core
machine busy with other work, the default tiny run took about 5 minutes with 2 threads and 28 to 40 s with 1
(docs/performance.md, "CPU threads"). A run therefore uses the cores it may use, shared among the processes of
this machine, less one left for what runs beside the math (data workers, wandb's process, the system), and at
most ``MAX_THREADS``. ``OMP_NUM_THREADS``, when set, is the user's (or the launcher's) choice and is kept.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

# Beyond this a step's operators gain little from more threads and lose more to waiting on one another.
MAX_THREADS = 8


@dataclass(frozen=True)
class CpuThreads:
    """The intra-op threads of each process and why that many."""

    count: int
    why: str

    def line(self) -> str:
        return f"cpu threads: {self.count} per process ({self.why})"

    def apply(self) -> None:
        torch.set_num_threads(self.count)


def choose_threads(omp_num_threads: str | None, cores: int, local_processes: int) -> CpuThreads:
    """The threads for one of ``local_processes`` processes sharing ``cores``; ``omp_num_threads`` (the
    environment's ``OMP_NUM_THREADS``) wins when set."""
    if omp_num_threads:  # torch has applied it at start-up
        return CpuThreads(torch.get_num_threads(), f"OMP_NUM_THREADS={omp_num_threads}")
    share = cores // max(local_processes, 1)
    count = max(1, min(share - 1, MAX_THREADS))
    processes = f"{local_processes} processes" if local_processes > 1 else "1 process"
    return CpuThreads(count, f"{cores} usable cores, {processes}, one core left free; OMP_NUM_THREADS sets it")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, bounded by the container's CPU quota if any."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs a cgroup quota allows (``docker --cpus``, a Kubernetes limit), or ``None`` without one."""
    try:
        if (v2 := cgroup / "cpu.max").is_file():  # "max 100000" or "<quota> <period>"
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = cgroup / "cpu"
        quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
        return None if quota_us <= 0 else quota_us / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def cpu_threads(local_processes: int) -> CpuThreads:
    """The threads for each of this machine's ``local_processes`` processes (the CPU side of a GPU run too)."""
    return choose_threads(os.environ.get("OMP_NUM_THREADS"), usable_cores(), local_processes)
