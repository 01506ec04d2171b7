"""A run directory belongs to one run: a fresh run never replaces another's results, and one process trains
in it at a time.

``claim`` refuses a fresh start where an earlier run left results, unless the run resumes or the user asks
to overwrite; ``RunLock`` keeps a second live process out. The lock is an ``flock``: it goes with the
process, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from ltxtune.errors import TrainingError

# What a run leaves that a fresh run would replace or truncate.
RESULTS = ("lora.safetensors", "model.safetensors", "result.json", "metrics.jsonl", "checkpoints")
LOCK_FILE = ".ltxtune.lock"


def earlier_results(run_dir: Path) -> list[str]:
    """The files of an earlier run in ``run_dir`` (empty files and directories do not count)."""
    found = []
    for name in RESULTS:
        path = run_dir / name
        if (path.is_file() and path.stat().st_size > 0) or (path.is_dir() and any(path.glob("step_*"))):
            found.append(name)
    return found


def claim(run_dir: Path, resuming: bool, overwrite: bool, asked_to_resume: bool = False) -> None:
    """Refuse a fresh run in a directory that holds another run's results. Raises ``TrainingError``.

    ``asked_to_resume``: the user asked for ``checkpoint.resume=auto`` and no checkpoint was found (a run
    stopped before its first checkpoint), so the advice to resume would lead nowhere.
    """
    if resuming or overwrite:
        return
    if found := earlier_results(run_dir):
        held = f"{run_dir} already holds a run ({', '.join(found)})"
        if asked_to_resume:
            raise TrainingError(
                f"{held} but no checkpoint to resume from (it stopped before checkpoint.every steps): start over "
                "in it with trainer.overwrite=true (its results are replaced), or choose another hydra.run.dir"
            )
        raise TrainingError(
            f"{held}: continue it with checkpoint.resume=auto, start over in it with trainer.overwrite=true "
            "(its results are replaced), or choose another hydra.run.dir"
        )


class RunLock:
    """An exclusive, non-blocking lock on ``run_dir`` for the life of a run (rank 0 only takes it)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.path, self.enabled = run_dir / LOCK_FILE, enabled
        self.handle: IO[str] | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise TrainingError(
                f"another process (pid {holder}) is training in {self.path.parent}: wait for it to finish, "
                "stop it, or choose another hydra.run.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
