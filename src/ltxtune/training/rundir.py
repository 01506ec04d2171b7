"""A run directory belongs to one run: a fresh run never replaces another's results, and one process trains
in it at a time.

``RunDir`` owns what a run does to its directory: where it resumes (a checkpoint of another run continues in
that run's directory), the claim (a fresh start is refused where an earlier run left results, unless the run
resumes or the user asks to overwrite; a fresh start then removes every file the earlier run wrote, so nothing
of it is resumed later), what a resume may do (never end with fewer steps than the run it continues; nothing
to do for a completed run asked for the steps it has), the lock that keeps a second live process out (an
``flock``: it goes with the process, so a killed run never leaves a stale lock behind), and the files it
writes around the training: the resolved config, the metrics cut back to the resumed step, the left-out
report, the model card and ``result.json``. Only the main process writes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ltxtune.errors import ConfigError, TrainingError
from ltxtune.evaluation.prompts import CACHE_FILE, NEGATIVE_CACHE_FILE
from ltxtune.training.card import CardFacts, remove_stale_card, write_card
from ltxtune.training.checkpoint import (
    CompatFacts,
    check_compat,
    list_checkpoints,
    resolve_resume,
    run_dir_of,
    saved_compat,
    step_of,
)
from ltxtune.training.result import RunResult

LEFT_OUT_REPORT = "left_out_samples.json"
METRICS_FILE = "metrics.jsonl"

# What a run leaves that a fresh run would replace or truncate.
RESULTS = ("lora.safetensors", "model.safetensors", "result.json", "metrics.jsonl", "checkpoints")
LOCK_FILE = ".ltxtune.lock"

# Everything else a run writes in its directory, which a fresh run removes: files, and folders of which only
# the named entries are the run's (``.tmp-*`` and the like are what a killed write left). The resolved config,
# Hydra's own files, a sweep job's job.json and anything the user put there are left alone.
RUN_FILES = (
    "lora.safetensors",
    "model.safetensors",
    "result.json",
    "result.json.tmp",
    METRICS_FILE,
    LEFT_OUT_REPORT,
    CACHE_FILE,
    NEGATIVE_CACHE_FILE,
    f".{NEGATIVE_CACHE_FILE}.*",
    "wandb_id.txt",
)
RUN_FOLDERS = {"checkpoints": ("step_*", ".tmp-step_*"), "samples": ("step_*",), "wandb": ("*",)}


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


def remove_earlier_run(run_dir: Path) -> None:
    """Remove what an earlier run wrote in ``run_dir`` (its results, checkpoints, samples, card, caches and
    wandb run), so that a fresh run in it keeps and resumes only its own; anything else stays."""
    for pattern in RUN_FILES:
        for path in run_dir.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
    for folder, patterns in RUN_FOLDERS.items():
        for pattern in patterns:
            for path in (run_dir / folder).glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        if (run_dir / folder).is_dir() and not any((run_dir / folder).iterdir()):
            (run_dir / folder).rmdir()
    remove_stale_card(run_dir)


class RunDir:
    """The directory of one run, as the main process (``main``) sees it; other ranks only read.

    ``resume`` is the checkpoint the run continues (or ``None``); ``earlier`` what the run it continues left in
    ``result.json``, once the directory is claimed.
    """

    def __init__(self, path: Path, main: bool = True) -> None:
        self.path, self.main = path, main
        self.resume: Path | None = None
        self.earlier: RunResult | None = None

    @classmethod
    def locate(cls, path: Path, resume: str | None, main: bool = True) -> RunDir:
        """The run's directory and the checkpoint it resumes from (``checkpoint.resume``): a checkpoint of
        another run continues in that run's directory (same ``metrics.jsonl``, same wandb run)."""
        checkpoint = resolve_resume(resume, path, checksums=main)
        if checkpoint is not None and run_dir_of(checkpoint) != path.resolve():
            path = run_dir_of(checkpoint)
            print(f"resuming {checkpoint.name} in its run directory {path}", flush=True)
        run_dir = cls(path, main)
        run_dir.resume = checkpoint
        return run_dir

    @contextmanager
    def claimed(
        self, max_steps: int, compat: CompatFacts, overwrite: bool, asked_to_resume: bool, rerun_incomplete: bool
    ) -> Iterator[RunDir]:
        """Hold the lock and claim the directory for the life of the run (``max_steps``: ``trainer.max_steps``;
        ``compat``: the config facts a checkpoint must have been saved under).

        The lock comes first, so a live run in the directory is named as such, not as results. A resume that
        would end with fewer steps than its run reached, or under another model, strategy or lora config, is
        refused. A fresh run refuses a directory holding another run's results unless ``overwrite``;
        ``rerun_incomplete`` (a sweep job run again) lets it replace an earlier attempt that did not complete;
        either way it then removes what the earlier run wrote. Nothing in the directory changes before these
        checks.
        """
        with RunLock(self.path, enabled=self.main):
            self.earlier = RunResult.read(self.path)  # every rank reads it: they must agree on nothing_to_do
            if self.resume is not None:
                self.check_steps(max_steps)
                check_compat(self.resume, saved_compat(self.resume), compat)
            if self.main:
                replaceable = rerun_incomplete and (self.earlier is None or not self.earlier.completed)
                claim(self.path, self.resume is not None, overwrite or replaceable, asked_to_resume)
                if self.resume is None:
                    remove_earlier_run(self.path)
            yield self

    @property
    def continues_completed(self) -> bool:
        """Whether the run resumes a run that completed (to train it further)."""
        return self.resume is not None and self.earlier is not None and self.earlier.completed

    def reached(self) -> tuple[int, str]:
        """The furthest step the run in this directory reached, and how that is known."""
        newest = max((step_of(p) for p in list_checkpoints(self.path / "checkpoints")), default=0)
        if self.earlier is not None and self.earlier.completed and self.earlier.steps > newest:
            return self.earlier.steps, f"it completed {self.earlier.steps} steps"
        return newest, f"its newest checkpoint is step_{newest:06d}"

    def check_steps(self, max_steps: int) -> None:
        """Refuse a resume that would end before the step its run reached: it would replace the run's weights
        and metrics with an earlier step's. Raises ``ConfigError``."""
        reached, how = self.reached()
        if not isinstance(max_steps, int) or max_steps >= reached:  # a wrong type is named by the settings
            return
        if (chosen := step_of(self.resume)) != reached:
            how += f"; checkpoint.resume chose step {chosen}"
        raise ConfigError(
            "trainer.max_steps",
            max_steps,
            f"at least {reached} to resume the run in {self.path} ({how}): a resume never ends with fewer steps "
            f"than the run it continues. Raise trainer.max_steps to continue it, or train {max_steps} steps in "
            "another hydra.run.dir (or in place of it: trainer.overwrite=true without checkpoint.resume)",
        )

    def nothing_to_do(self, max_steps: int) -> RunResult | None:
        """The run's own result when it completed exactly ``max_steps`` steps, its weights are there and the
        resume starts from its last step: it is said in one line and nothing is written. ``None`` otherwise."""
        earlier = self.earlier
        if not self.continues_completed or step_of(self.resume) != max_steps or earlier.steps != max_steps:
            return None
        if earlier.weights is not None and not (self.path / earlier.weights).is_file():
            return None  # the final weights are gone: the run writes them again from its final state
        if self.main:
            print(
                f"nothing to do: the run in {self.path} completed its {max_steps} steps (trainer.max_steps="
                f"{max_steps}); its files are unchanged. Raise trainer.max_steps to continue it",
                flush=True,
            )
        return dataclasses.replace(earlier, run_dir=self.path, unchanged=True)

    def write_config(self, text: str) -> None:
        if self.main:
            (self.path / "config.yaml").write_text(text)

    def truncate_metrics(self, step: int) -> None:
        """Drop what a killed run logged after its last checkpoint (``step``), so the resumed run's lines follow
        on; a fresh run (``step=-1``) in a used directory starts a fresh file."""
        path = self.path / METRICS_FILE
        if self.main and path.is_file():
            lines = [ln for ln in path.read_text().splitlines() if (row := parse_line(ln)) and row["step"] <= step]
            path.write_text("".join(ln + "\n" for ln in lines))

    def report_left_out(self, groups: dict[str, dict[str, str]]) -> None:
        """Say which samples were left out, in one line and a file with every reason; ``groups``: why, in a
        few words (``without audio``) -> sample -> the full reason (``Split.left_out_groups``)."""
        if not self.main or not groups:
            return
        every = {name: why for samples in groups.values() for name, why in samples.items()}
        (self.path / LEFT_OUT_REPORT).write_text(json.dumps(every, indent=1) + "\n")
        counts = [f"{len(samples)} {label}" for label, samples in groups.items()]
        first, why = next(iter(every.items()))
        print(
            f"warning: left out {len(every)} samples: {', '.join(counts)}, e.g. {first}: {why}; "
            f"every one with its reason in {self.path / LEFT_OUT_REPORT}",
            flush=True,
        )

    def write_card(self, facts: CardFacts) -> None:
        """``README.md`` beside the weights of a completed run."""
        if self.main:
            write_card(self.path, facts)

    def write_result(self, result: RunResult) -> None:
        """``result.json``; a full disk is said in one line and keeps the error that brought the run here."""
        if not self.main:
            return
        try:
            result.write(self.path)
        except OSError as exc:
            print(f"error: could not write {self.path / 'result.json'}: {exc.strerror or exc}", flush=True)


def parse_line(line: str) -> dict[str, Any] | None:
    """One line of ``metrics.jsonl``; ``None`` for a line a kill cut short (or any that is not a record)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None
