"""What a job leaves in ``result.json``: one typed record, written by the run and read by the app, the sweeps
and the tests.

The file keeps the metric names users see elsewhere (``train/loss``, ``val/loss``); unset fields are left out.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILENAME = "result.json"
# Field name -> key in the file, where they differ (a metric name is not an identifier).
_FILE_KEYS = {"train_loss": "train/loss", "val_loss": "val/loss"}
_FIELD_NAMES = {key: name for name, key in _FILE_KEYS.items()}
_NOT_WRITTEN = {"run_dir", "unchanged"}


def objective_of(value: float | None) -> float:
    """The float a sweeper minimizes: never NaN (a NaN crashes an Optuna study), ``inf`` when unknown."""
    return float(value) if value is not None and math.isfinite(value) else math.inf


@dataclass
class RunResult:
    """The outcome of one job. ``status`` is ``completed``, ``failed``, ``interrupted`` or ``pruned`` (stopped early
    by a search's pruner); ``objective`` is ``inf`` unless completed."""

    status: str = "failed"
    steps: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    objective: float = math.inf
    wall_s: float | None = None
    error: str | None = None
    interrupted: bool | None = None
    processes: int | None = None
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES the job ran with (a GPU sweep's own GPUs)
    rank_weight_checksums: list[str] | None = None
    weights: str | None = None
    validation: str | None = None  # held_out | training_subset (data.val_samples=0: nothing was held out)
    left_out_samples: int | None = None  # unreadable samples (data.strict=false) and clips without sound left out
    run_dir: Path | None = field(default=None, compare=False)  # where the job ran; not written to the file
    # The job found its run completed with the steps asked for and changed nothing; not written to the file.
    unchanged: bool = field(default=False, compare=False)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def interrupt(self, by: str, step: int) -> None:
        """Stopped by a signal at ``step``, with a checkpoint to resume from."""
        self.status, self.interrupted = "interrupted", True
        self.error = f"interrupted by {by} at step {step}; resume with checkpoint.resume=auto"

    def prune(self, step: int) -> None:
        """Stopped by a search's pruner at ``step``: its val/loss was behind the other trials' at that step."""
        self.status, self.steps = "pruned", step

    def summary(self) -> dict[str, int | float | str]:
        """The scalar fields, as a dashboard's run summary takes them."""
        return {k: v for k, v in self.to_dict().items() if isinstance(v, int | float | str)}

    def settle_objective(self) -> None:
        """The final ``val/loss`` of a completed run, ``inf`` otherwise."""
        self.objective = objective_of(self.val_loss) if self.completed else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            _FILE_KEYS.get(f.name, f.name): value
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) is not None and f.name not in _NOT_WRITTEN
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Unknown keys (a newer version's) are ignored; missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)} - _NOT_WRITTEN
        values = {_FIELD_NAMES.get(key, key): value for key, value in data.items()}
        return cls(**{name: value for name, value in values.items() if name in known})

    def write(self, run_dir: Path) -> None:
        """Atomically: a reader sees the old file or the new one, never half of one."""
        tmp = run_dir / f"{FILENAME}.tmp"
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(run_dir / FILENAME)

    @classmethod
    def read(cls, run_dir: Path) -> RunResult | None:
        """The result in ``run_dir``; ``None`` when the job has not finished (no file, or an unreadable one)."""
        path = run_dir / FILENAME
        try:
            return dataclasses.replace(cls.from_dict(json.loads(path.read_text())), run_dir=run_dir)
        except (OSError, json.JSONDecodeError, TypeError):
            return None
