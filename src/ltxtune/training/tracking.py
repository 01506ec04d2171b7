"""Where metrics go: ``metrics.jsonl`` always, plus wandb or nothing (the ``logger`` group)."""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from ltxtune.errors import check_choice
from ltxtune.evaluation.media import wandb_media


class Tracker(Protocol):
    def start(
        self, run_dir: Path, config: dict[str, Any], choices: dict[str, Any], sweep_job: tuple[str, str] | None
    ) -> None: ...

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def log_videos(self, paths: list[Path], step: int) -> None: ...

    def finish(self, summary: dict[str, Any], failed: bool) -> None: ...


class NullLogger:
    """``logger=none``: the dashboard does nothing; ``metrics.jsonl`` still records everything."""

    def start(
        self, run_dir: Path, config: dict[str, Any], choices: dict[str, Any], sweep_job: tuple[str, str] | None
    ) -> None:
        pass

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_videos(self, paths: list[Path], step: int) -> None:
        pass

    def finish(self, summary: dict[str, Any], failed: bool) -> None:
        pass


class MetricsFile:
    """One JSON object per logged step, with the dashboard's keys, appended to ``metrics.jsonl``."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def start(
        self, run_dir: Path, config: dict[str, Any], choices: dict[str, Any], sweep_job: tuple[str, str] | None
    ) -> None:
        self.path = run_dir / "metrics.jsonl"

    def log_videos(self, paths: list[Path], step: int) -> None:
        """The clips stay in the run directory (``samples/``); the metrics file records numbers only."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": step, **{k: _json_number(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def finish(self, summary: dict[str, Any], failed: bool) -> None:
        pass


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


class WandbLogger:
    """Weights & Biases, offline unless ``mode`` (or ``WANDB_MODE``) says otherwise: never asks for a login.

    In a sweep job (``sweep_job``: its group and name), ``group`` and ``name`` left null become the sweep and the
    job's swept overrides (``lora.rank=8,optimizer.lr=0.001``), so a dashboard groups and labels the jobs.
    """

    def __init__(
        self,
        project: str = "ltxtune",
        mode: str = "offline",
        entity: str | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        check_choice("mode", mode, ("online", "offline", "disabled"))
        self.project, self.mode, self.entity = project, mode, entity
        self.group, self.name, self.tags = group, name, list(tags or [])
        self.run = None

    def start(
        self, run_dir: Path, config: dict[str, Any], choices: dict[str, Any], sweep_job: tuple[str, str] | None
    ) -> None:
        import wandb

        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id)
        os.environ.setdefault("WANDB_SILENT", "true")
        group, name = self.group, self.name
        if sweep_job is not None:  # a sweep job: grouped by sweep, named by its swept overrides
            group, name = group or sweep_job[0], name or sweep_job[1]
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            dir=str(run_dir),
            id=run_id,
            resume="allow",
            group=group,
            name=name,
            job_type="sweep-job" if sweep_job else None,
            tags=self.tags,
            config={**config, "hydra_choices": choices},
            reinit="finish_previous",
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_videos(self, paths: list[Path], step: int) -> None:
        if paths:
            self.run.log(wandb_media(paths), step=step)

    def finish(self, summary: dict[str, Any], failed: bool) -> None:
        if self.run is None:
            return
        for key, value in summary.items():
            self.run.summary[key] = value
        if summary.get("status") == "pruned":  # stopped early by a search's pruner: findable by its tag
            self.run.tags = (*(self.run.tags or ()), "pruned")
        if self.mode != "disabled":  # writing out the run can take seconds: say why the process still waits
            print(f"closing the wandb run ({self.mode})", flush=True)
        self.run.finish(exit_code=1 if failed else 0)
        self.run = None
